/* plan.c — see plan.h. */
#include "plan.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "observe.h"

void plan_release(config_plan *p)
{
        security_plan_release(&p->sec);
        for (size_t i = 0; p->am && i < p->health.n_alertmanagers; i++)
                free(p->am[i]);
        free(p->am);
        free(p->alert_labels);
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
        /* health: the table wrote the scalars into the module's own struct and the policies
         * and webhooks into its item structs; only the Alertmanager list is split here */
        p->health = c->health;
        p->health.policies = c->policies;
        p->health.n_policies = c->n_policies;
        p->health.webhooks = c->alerting.webhooks;
        p->health.n_webhooks = c->alerting.n_webhooks;
        p->health.alertmanagers = NULL;
        p->health.n_alertmanagers = 0;
        for (const char *s = c->alerting.alertmanagers; s && *s;) {
                const char *e = strchrnul(s, ',');
                char **na = realloc(p->am, (p->health.n_alertmanagers + 1) * sizeof(*na));
                if (!na)
                        goto oom;
                p->am = na;
                p->am[p->health.n_alertmanagers] = strndup(s, (size_t)(e - s));
                if (!p->am[p->health.n_alertmanagers])
                        goto oom;
                p->health.n_alertmanagers++;
                s = *e ? e + 1 : e;
        }
        p->health.alertmanagers = (const char *const *)p->am;
        p->health.alert_labels = NULL;
        p->health.n_alert_labels = 0;
        if (c->alerting.n_labels) {
                p->alert_labels = calloc(c->alerting.n_labels, sizeof(*p->alert_labels));
                if (!p->alert_labels)
                        goto oom;
                for (size_t i = 0; i < c->alerting.n_labels; i++)
                        p->alert_labels[i] =
                            (health_label){c->alerting.labels[i].name, c->alerting.labels[i].value};
                p->health.alert_labels = p->alert_labels;
                p->health.n_alert_labels = c->alerting.n_labels;
        }
        return 0;
oom:
        snprintf(err, errlen, "out of memory");
        r = -ENOMEM;
fail:
        plan_release(p);
        return r;
}
