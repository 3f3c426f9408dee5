/* health.c — the health engine's wiring and its thread. It owns the configuration, the incident
 * store (incidents.c), the notifier and the policy runner, and runs one evaluation per "sweep
 * done" event of the sampler: rules (eval.c) into incidents, resolve timers, then persistence,
 * notifications and policy actions outside the lock. It is the top of the health module: it calls
 * eval.c, incidents.c, notifier.c and policy.c, and none of them calls back here (check_cycles).
 * The thread has no timer of its own: resolve timers and host checks advance on the sweeps, which
 * come at least once per slow-tier interval (docs/internals/health.md). XIDs and anomalies open
 * their incident at once on the calling thread (in memory, under the lock: visible at once), and
 * the health thread persists and notifies it a moment later. */
#include "health.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macros.h"
#include "common/sparse.h"
#include "common/vtime.h"
#include "health-internal.h"
#ifdef VIGIL_HAVE_STORE
#include "store/store.h"
#endif

/* Ask the health thread for an evaluation. Under h->inc.lock; never blocks. */
static void kick(health *h)
{
        h->pending = true;
        pthread_cond_signal(&h->wake);
}

void health_eval(health *h)
{
        host_facts hf;
        incident_work work;
        int64_t now;

        pthread_mutex_lock(&h->eval_lock);
        health_host_facts(h->opt.sampler, h->data_dir, &h->os_facts, time_mono_us(), &hf);
        now = time_real_us();
        pthread_mutex_lock(&h->inc.lock);
        h->evaluations++;
        health_eval_rules(&h->inc, &(eval_input){.cache = h->opt.cache,
                                                 .sampler = h->opt.sampler,
                                                 .cfg = &h->cfg,
                                                 .host = &hf,
                                                 .unresponsive = h->unresponsive,
                                                 .memo = h->memo,
                                                 .now_us = now});
        incidents_resolve(&h->inc, &h->cfg, now);
        /* Collect the work to do outside the lock: policies for fresh incidents and alerts. */
        incidents_take_work(&h->inc, now, h->cfg.resend_interval_us, &work);
        pthread_mutex_unlock(&h->inc.lock);

        incidents_persist(&h->inc);
        if (work.n_send) {
                /* Rules run once per fast sweep: a resend is never more often than that. */
                sampler_stats st;
                sampler_get_stats(h->opt.sampler, &st);
                for (size_t i = 0; i < work.n_send; i++)
                        if (h->notifier)
                                notifier_enqueue(
                                    h->notifier, &work.send[i],
                                    MAX(h->cfg.resend_interval_us, st.tier[TIER_FAST].interval_us));
        }
        for (size_t i = 0; i < work.n_fresh; i++)
                if (h->policies) /* queued: the worker runs the actions */
                        policy_submit(h->policies, &work.fresh[i], now);
        incident_work_release(&work);
        pthread_mutex_unlock(&h->eval_lock);
}

/* ---- sampler and detector hooks -------------------------------------------------------------- */

void health_on_sweep(health *h, enum field_tier tier)
{
        (void)tier;
        if (!h)
                return;
        pthread_mutex_lock(&h->inc.lock);
        kick(h);
        pthread_mutex_unlock(&h->inc.lock);
}

void health_on_event(health *h, unsigned gpu, unsigned kind, uint64_t data, int64_t ts_us)
{
        if (!h || gpu >= SAMPLER_MAX_GPUS)
                return;
        pthread_mutex_lock(&h->inc.lock);
        if (kind == BEV_XID)
                health_eval_xid(&h->inc, &h->cfg, h->opt.sampler, gpu, (uint32_t)data,
                                ts_us ? ts_us : time_real_us());
        /* ECC events: the counters the memory rules read are in the next fast sweep; evaluate
         * as soon as the thread runs. */
        kick(h);
        pthread_mutex_unlock(&h->inc.lock);
}

/* The anomaly detector's listener (sampling thread, must not block): like an XID, the incident is
 * opened in memory under the lock and the health thread persists and notifies it. */
void health_on_anomaly(void *userdata, const anomaly_event *ev)
{
        health *h = userdata;

        if (!h || ev->gpu >= SAMPLER_MAX_GPUS)
                return;
        pthread_mutex_lock(&h->inc.lock);
        health_eval_anomaly(&h->inc, &h->cfg, ev, time_real_us());
        kick(h);
        pthread_mutex_unlock(&h->inc.lock);
}

void health_watch_anomalies(health *h, anomaly *a)
{
        if (h->anomaly && h->anomaly != a)
                anomaly_set_listener(h->anomaly, NULL, NULL);
        h->anomaly = a;
        if (a)
                anomaly_set_listener(a, health_on_anomaly, h);
}

void health_set_unresponsive(health *h, unsigned gpu, bool on)
{
        if (!h || gpu >= SAMPLER_MAX_GPUS)
                return;
        atomic_store(&h->unresponsive[gpu], on);
        health_on_sweep(h, TIER_EVENT);
}

int health_ack(health *h, uint64_t id, const char *by, json_t **out)
{
        int r = incidents_ack(&h->inc, id, by, out);

        if (r < 0)
                return r;
        pthread_mutex_lock(&h->inc.lock);
        kick(h); /* persisted and notified by the health thread */
        pthread_mutex_unlock(&h->inc.lock);
        if (!h->started)
                incidents_persist(&h->inc);
        return 0;
}

int health_incident_actions(health *h, uint64_t id, json_t **ret)
{
        return policy_actions_json(h->opt.store, id, ret);
}

/* ---- thread ---------------------------------------------------------------------------------- */

/* Evaluate once per kick: a sweep, an event, an acknowledgement, an anomaly. No timer: with the
 * sampler stopped, nothing changes that an evaluation could see. */
static void *health_main(void *arg)
{
        health *h = arg;

        pthread_setname_np(pthread_self(), "vg-health");
        pthread_mutex_lock(&h->inc.lock);
        while (!h->stopping) {
                while (!h->pending && !h->stopping)
                        pthread_cond_wait(&h->wake, &h->inc.lock);
                if (h->stopping)
                        break;
                h->pending = false;
                pthread_mutex_unlock(&h->inc.lock);
                health_eval(h);
                pthread_mutex_lock(&h->inc.lock);
        }
        pthread_mutex_unlock(&h->inc.lock);
        return NULL;
}

static void on_stuck(void *userdata, unsigned gpu, bool stuck)
{
        health_set_unresponsive(userdata, gpu, stuck);
}

int health_new(const health_options *opt, health **ret)
{
        health *h;
        int r;

        if (!opt || !opt->sampler || !opt->cache || !opt->cfg)
                return -EINVAL;
        h = sparse_zalloc(sizeof(*h)); /* the incident store: written as incidents open */
        if (!h)
                return -ENOMEM;
        h->opt = *opt;
        incidents_init(&h->inc, opt->store);
        h->data_dir = strdup(opt->data_dir ? opt->data_dir : "");
        h->hostname = strdup(opt->hostname ? opt->hostname : "");
        pthread_mutex_init(&h->eval_lock, NULL);
        pthread_cond_init(&h->wake, NULL);
        if (!h->data_dir || !h->hostname || health_config_copy(&h->cfg, opt->cfg) < 0) {
                health_free(h);
                return -ENOMEM;
        }
        h->opt.cfg = &h->cfg;
        r = notifier_new(opt->store, &h->cfg, h->hostname, &h->notifier);
        if (r < 0) {
                health_free(h);
                return r;
        }
        r = policy_new(&h->cfg, opt->backend, opt->cache, opt->store, &h->policies);
        if (r >= 0)
                policy_set_diag(h->policies, opt->diag, opt->diag_userdata);
        if (r < 0) {
                health_free(h);
                return r;
        }
        sampler_set_watchdog(h->opt.sampler, h->cfg.nvml_call_timeout_us, on_stuck, h);
        *ret = h;
        return 0;
}

int health_start(health *h)
{
        int r = incidents_load(&h->inc);

        if (r < 0)
                log_error("health", "failed to load incidents from the store: %s", strerror(-r));
        else if (h->inc.n)
                log_info("health", "reloaded %zu open incidents from the store", h->inc.n);
        r = notifier_start(h->notifier);
        if (r < 0)
                return r;
        r = policy_start(h->policies);
        if (r < 0)
                return r;
        r = pthread_create(&h->thread, NULL, health_main, h);
        if (r)
                return -r;
        h->started = true;
        return 0;
}

void health_stop(health *h)
{
        if (!h)
                return;
        if (h->started) {
                pthread_mutex_lock(&h->inc.lock);
                h->stopping = true;
                pthread_cond_signal(&h->wake);
                pthread_mutex_unlock(&h->inc.lock);
                pthread_join(h->thread, NULL);
                h->started = false;
                incidents_persist(&h->inc);
        }
        notifier_stop(h->notifier);
}

health *health_free(health *h)
{
        if (!h)
                return NULL;
        if (h->opt.sampler)
                sampler_set_watchdog(h->opt.sampler, 0, NULL, NULL);
        health_watch_anomalies(h, NULL);
        health_stop(h);
        h->notifier = notifier_free(h->notifier);
        h->policies = policy_free(h->policies);
        health_config_free(&h->cfg);
        pthread_cond_destroy(&h->wake);
        incidents_release(&h->inc);
        pthread_mutex_destroy(&h->eval_lock);
        free(h->data_dir);
        free(h->hostname);
        sparse_free(h, sizeof(*h));
        return NULL;
}

int health_reconfigure(health *h, const health_config *cfg)
{
        health_config next, old;
        int r = health_config_copy(&next, cfg);

        if (r < 0)
                return r;
        /* Targets first: the only step that can fail (a thread to start), before anything
         * else changed. Pending alerts of targets kept stay in the outbox. */
        r = notifier_set_targets(h->notifier, &next);
        if (r < 0) {
                health_config_free(&next);
                return r;
        }
        /* The policy table: an action in progress on the worker ends with its old policy;
         * the evaluation lock below is never held across an action. */
        policy_set(h->policies, next.policies, next.n_policies);
        /* Thresholds, switches, resend interval: the whole configuration, between evaluations. */
        pthread_mutex_lock(&h->eval_lock);
        pthread_mutex_lock(&h->inc.lock);
        old = h->cfg;
        h->cfg = next;
        pthread_mutex_unlock(&h->inc.lock);
        pthread_mutex_unlock(&h->eval_lock);
        sampler_set_watchdog(h->opt.sampler, h->cfg.nvml_call_timeout_us, on_stuck, h);
        health_config_free(&old);
        return 0;
}
