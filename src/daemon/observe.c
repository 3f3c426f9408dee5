/* observe.c — configuration → logger sinks and anomaly detector (see observe.h). */
#include "observe.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macros.h"
#include "fields/fields.h"

int observe_log_prepare(const vigil_config *c, log_options *o, char *err, size_t errlen)
{
        const char *path = c->logging.file_path;

        *o = c->logging; /* the table wrote the log module's own options */
        if (path && *path) {
                /* What log_configure will need, checked without creating the file. */
                char dir[4096];
                const char *slash = strrchr(path, '/');
                struct stat st;

                if (slash == path)
                        snprintf(dir, sizeof(dir), "/");
                else if (slash)
                        snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);
                else
                        snprintf(dir, sizeof(dir), ".");
                if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode)) {
                        snprintf(err, errlen,
                                 "logging.file.path: cannot write '%s': the directory '%s' does "
                                 "not exist",
                                 path, dir);
                        return -ENOENT;
                }
                if (access(path, F_OK) == 0 ? access(path, W_OK) < 0
                                            : access(dir, W_OK | X_OK) < 0) {
                        int e = errno;
                        snprintf(err, errlen, "logging.file.path: cannot write '%s': %s", path,
                                 strerror(e));
                        return -e;
                }
        }
        return 0;
}

int observe_log_apply(const vigil_config *c, char *err, size_t errlen)
{
        log_options o;
        int r = observe_log_prepare(c, &o, err, errlen);

        return r < 0 ? r : log_configure(&o, err, errlen);
}

anomaly *observe_anomaly_new(const vigil_config *c)
{
        const struct {
                bool on;
                uint16_t id;
        } sw[] = {
            {c->anomaly.f_gpu_temp, FLD_GPU_TEMP},    {c->anomaly.f_power, FLD_POWER_USAGE},
            {c->anomaly.f_mem_temp, FLD_MEMORY_TEMP}, {c->anomaly.f_util, FLD_GPU_UTIL},
            {c->anomaly.f_sm_clock, FLD_SM_CLOCK},
        };
        uint16_t fields[ANOMALY_MAX_FIELDS];
        char path[4096];
        anomaly_options o = {0};
        anomaly *a = NULL;
        size_t n = 0;
        int r;

        if (!c->anomaly.enabled)
                return NULL;
        for (size_t i = 0; i < ARRAY_SIZE(sw) && n < ANOMALY_MAX_FIELDS; i++)
                if (sw[i].on)
                        fields[n++] = sw[i].id;
        snprintf(path, sizeof(path), "%s/baselines.json", c->data_dir);
        o.enabled = true;
        o.k = c->anomaly.k;
        o.sustain_us = c->anomaly.sustain_us;
        o.window_us = c->anomaly.window_us;
        o.min_samples = c->anomaly.min_samples;
        o.peer_enabled = c->anomaly.peer_enabled;
        o.peer_k = c->anomaly.peer_k;
        o.peer_min_gpus = c->anomaly.peer_min_gpus;
        o.peer_band = c->anomaly.peer_band;
        o.fields = fields;
        o.n_fields = n;
        o.state_path = path;
        o.persist_us = c->anomaly.persist_us;
        r = anomaly_new(&o, &a);
        if (r < 0) {
                log_error("anomaly", "failed to set up anomaly detection: %s", strerror(-r));
                return NULL;
        }
        anomaly_load(a); /* a missing or bad file starts fresh (a bad one is logged) */
        return a;
}
