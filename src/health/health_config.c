/* health_config.c — see health_config.h. */
#include "health_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/vtime.h"

void health_config_defaults(health_config *c)
{
        memset(c, 0, sizeof(*c));
        c->enabled = true;
        c->temp_warning = 85;
        c->temp_critical = 90;
        c->temp_hysteresis = 3;
        c->resolve_after_us = 60 * USEC_PER_SEC;
        c->xid_hold_us = 600 * USEC_PER_SEC;
        c->nvml_call_timeout_us = 5 * USEC_PER_SEC;
        c->collection_stretched_after_us = 5 * 60 * USEC_PER_SEC;
        c->throttle_sustain_us = 30 * USEC_PER_SEC;
        c->power_sustain_us = 0;
        c->max_rss_bytes = 256ULL << 20;
        c->disk_warning = 90;
        c->disk_critical = 97;
        for (int i = 0; i < HEALTH_SYS_COUNT; i++)
                c->systems[i] = true;
        c->resend_interval_us = 60 * USEC_PER_SEC;
        c->alert_timeout_us = 5 * USEC_PER_SEC;
}

/* ---- config copy ----------------------------------------------------------------------------- */

void health_config_free(health_config *c)
{
        free((void *)c->policies);
        for (size_t i = 0; i < c->n_alertmanagers; i++)
                free((void *)c->alertmanagers[i]);
        free((void *)c->alertmanagers);
        free((void *)c->webhooks);
        for (size_t i = 0; i < c->n_alert_labels; i++) {
                free((void *)c->alert_labels[i].name);
                free((void *)c->alert_labels[i].value);
        }
        free((void *)c->alert_labels);
        memset(c, 0, sizeof(*c));
}

int health_config_copy(health_config *dst, const health_config *src)
{
        health_config c = *src;
        char **am = NULL;

        c.policies = NULL;
        c.alertmanagers = NULL;
        c.webhooks = NULL;
        c.alert_labels = NULL;
        c.n_alert_labels = 0;
        if (src->n_alert_labels) {
                health_label *l = calloc(src->n_alert_labels, sizeof(*l));
                if (!l)
                        goto oom;
                c.alert_labels = l;
                for (size_t i = 0; i < src->n_alert_labels; i++) {
                        l[i].name = strdup(src->alert_labels[i].name);
                        l[i].value = strdup(src->alert_labels[i].value);
                        c.n_alert_labels = i + 1;
                        if (!l[i].name || !l[i].value)
                                goto oom;
                }
        }
        if (src->n_policies) {
                health_policy *p = calloc(src->n_policies, sizeof(*p));
                if (!p)
                        goto oom;
                memcpy(p, src->policies, src->n_policies * sizeof(*p));
                c.policies = p;
        }
        if (src->n_webhooks) {
                health_webhook *w = calloc(src->n_webhooks, sizeof(*w));
                if (!w)
                        goto oom;
                memcpy(w, src->webhooks, src->n_webhooks * sizeof(*w));
                c.webhooks = w;
        }
        if (src->n_alertmanagers) {
                am = calloc(src->n_alertmanagers, sizeof(*am));
                if (!am)
                        goto oom;
                c.alertmanagers = (const char *const *)am;
                for (size_t i = 0; i < src->n_alertmanagers; i++) {
                        am[i] = strdup(src->alertmanagers[i]);
                        if (!am[i]) {
                                c.n_alertmanagers = i;
                                goto oom;
                        }
                }
        }
        *dst = c;
        return 0;
oom:
        health_config_free(&c);
        return -ENOMEM;
}
