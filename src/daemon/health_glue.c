/* health_glue.c — the health, policies and alerting sections of vigil_config turned into the
 * health engine's health_config (the daemon is the only module that knows both). */
#include "health_glue.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"

void health_glue_release(health_glue *g)
{
        free(g->policies);
        for (size_t i = 0; i < g->n_am; i++)
                free(g->am[i]);
        free(g->am);
        free(g->webhooks);
        memset(g, 0, sizeof(*g));
}

static void parse_rate(const char *s, unsigned *count, int64_t *window)
{
        const char *slash = s ? strchr(s, '/') : NULL;

        *count = 0;
        *window = 0;
        if (!slash)
                return;
        *count = (unsigned)strtoul(s, NULL, 10);
        if (time_parse_duration(slash + 1, window) < 0)
                *count = 0;
}

int health_glue_build(const vigil_config *c, health_glue *g)
{
        health_config *h = &g->cfg;

        memset(g, 0, sizeof(*g));
        *h = c->health; /* the scalars, as the table wrote them */
        h->policies = NULL;
        h->alertmanagers = NULL;
        h->webhooks = NULL;

        if (c->n_policies) {
                g->policies = calloc(c->n_policies, sizeof(*g->policies));
                if (!g->policies)
                        goto oom;
        }
        for (size_t i = 0; i < c->n_policies; i++) {
                const config_policy *cp = &c->policies[i];
                health_policy *p = &g->policies[i];
                const char *s = cp->actions;
                snprintf(p->condition, sizeof(p->condition), "%s", cp->condition);
                while (s && *s) {
                        const char *e = strchrnul(s, ',');
                        char name[32];
                        int a;
                        snprintf(name, sizeof(name), "%.*s", (int)MIN(e - s, 31), s);
                        a = health_action_from_name(name);
                        if (a >= 0)
                                p->actions |= 1u << a;
                        s = *e ? e + 1 : e;
                }
                snprintf(p->exec, sizeof(p->exec), "%s", cp->exec);
                p->exec_timeout_us = cp->exec_timeout_us;
                p->power_limit_percent = cp->power_limit_percent;
                p->dry_run = cp->dry_run;
                p->allow_reset_on_real_gpu = cp->allow_reset_on_real_gpu;
                parse_rate(cp->rate_limit, &p->rate_count, &p->rate_window_us);
        }
        h->policies = g->policies;
        h->n_policies = c->n_policies;

        for (const char *s = c->alerting.alertmanagers; s && *s;) {
                const char *e = strchrnul(s, ',');
                char **na = realloc(g->am, (g->n_am + 1) * sizeof(*na));
                if (!na)
                        goto oom;
                g->am = na;
                g->am[g->n_am] = strndup(s, (size_t)(e - s));
                if (!g->am[g->n_am])
                        goto oom;
                g->n_am++;
                s = *e ? e + 1 : e;
        }
        h->alertmanagers = (const char *const *)g->am;
        h->n_alertmanagers = g->n_am;

        if (c->alerting.n_webhooks) {
                g->webhooks = calloc(c->alerting.n_webhooks, sizeof(*g->webhooks));
                if (!g->webhooks)
                        goto oom;
        }
        for (size_t i = 0; i < c->alerting.n_webhooks; i++) {
                snprintf(g->webhooks[i].url, sizeof(g->webhooks[i].url), "%s",
                         c->alerting.webhooks[i].url);
                snprintf(g->webhooks[i].secret, sizeof(g->webhooks[i].secret), "%s",
                         c->alerting.webhooks[i].secret);
        }
        h->webhooks = g->webhooks;
        h->n_webhooks = c->alerting.n_webhooks;
        return 0;
oom:
        health_glue_release(g);
        return -ENOMEM;
}
