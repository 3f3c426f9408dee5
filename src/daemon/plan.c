/* plan.c — see plan.h. */
#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "observe.h"

void plan_release(config_plan *p)
{
        security_plan_release(&p->sec);
        health_glue_release(&p->health);
        p->counters = counters_free(p->counters);
        memset(p, 0, sizeof(*p));
}

int plan_prepare(const vigil_config *c, bool simulate, bool tls_running, config_plan *p, char *err,
                 size_t errlen)
{
        int r;

        memset(p, 0, sizeof(*p));
        r = observe_log_prepare(c, &p->log, err, errlen);
        if (r < 0)
                return r;
        if (c->encryption.data_at_rest && !c->encryption.encryption_key[0]) {
                snprintf(err, errlen,
                         "security.encryption.data_at_rest is true but no encryption_key is set "
                         "(e.g. \"${VIGIL_ENCRYPTION_KEY}\")");
                return -EINVAL;
        }
        r = security_prepare(c, simulate, tls_running, &p->sec, err, errlen);
        if (r < 0) {
                char why[768];
                snprintf(why, sizeof(why), "%s", err);
                snprintf(err, errlen, "failed to set up security: %s", why);
                goto fail;
        }
        if (c->metrics.counters_csv[0]) {
                char why[768] = "";
                r = counters_load(c->metrics.counters_csv, &p->counters, why, sizeof(why));
                if (r < 0) {
                        snprintf(err, errlen, "failed to load the counters CSV: %s", why);
                        goto fail;
                }
        }
        r = health_glue_build(c, &p->health);
        if (r < 0) {
                snprintf(err, errlen, "failed to build the health configuration: %s", strerror(-r));
                goto fail;
        }
        return 0;
fail:
        plan_release(p);
        return r;
}
