/* test_health.c — the rule engine driven with synthetic readings: for every rule a case that
 * fires it and one that must not (noise at the threshold, a counter that wraps, a GPU that comes
 * back), plus hysteresis, the PCIe replay table, XID classification and the alert payloads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/vtime.h"
#include "health/health-internal.h"
#include "health/xid.h"
#include "store/store.h"

#define NOW (INT64_C(1700000000) * USEC_PER_SEC)

/* Fields a test case may set, all in one cache group of GPU 0. */
static const uint16_t fields[] = {
    FLD_GPU_TEMP,
    FLD_SLOWDOWN_TEMP,
    FLD_SHUTDOWN_TEMP,
    FLD_PCIE_LINK_GEN,
    FLD_PCIE_LINK_WIDTH,
    FLD_PCIE_REPLAY_COUNTER,
    FLD_ECC_DBE_VOL_TOTAL,
    FLD_RETIRED_SBE,
    FLD_RETIRED_DBE,
    FLD_RETIRED_PENDING,
    FLD_ROW_REMAP_FAILURE,
    FLD_ROW_REMAP_PENDING,
    FLD_UNCORRECTABLE_REMAPPED_ROWS,
    FLD_THERMAL_VIOLATION,
    FLD_POWER_VIOLATION,
    FLD_POWER_USAGE,
    FLD_CLOCKS_EVENT_REASONS,
    FLD_ENFORCED_POWER_LIMIT,
    FLD_POWER_LIMIT_DEFAULT,
};
#define NF (sizeof(fields) / sizeof(fields[0]))

typedef struct sample {
        uint16_t field;
        int64_t v; /* F64 fields get (double)v */
} sample;

typedef struct world {
        cache *c;
        int group;
        field_value row[NF]; /* current values */
        health_config cfg;
        sampler_gpu g;
        host_facts host;
} world;

static void world_init(world *w)
{
        memset(w, 0, sizeof(*w));
        assert_int_equal(cache_new(1, &w->c), 0);
        w->group = cache_group_add(w->c, 0, fields, NF, 1024, 0);
        assert_true(w->group >= 0);
        /* a healthy H200 */
        for (size_t i = 0; i < NF; i++)
                w->row[i] = (field_value){.status = 0};
        health_config_defaults(&w->cfg);
        w->cfg.throttle_sustain_us = 10 * USEC_PER_SEC;
        w->g.up = true;
        w->host.gpu_count = 8;
        w->host.disk_pct = 40;
        w->host.rss_bytes = 50 << 20;
}

static void set(world *w, uint16_t f, int64_t v)
{
        for (size_t i = 0; i < NF; i++)
                if (fields[i] == f) {
                        const field_meta *m = field_by_id(f);
                        w->row[i].status = 0;
                        if (m->type == FT_F64)
                                w->row[i].d = (double)v;
                        else
                                w->row[i].i = v;
                }
}

static void set_status(world *w, uint16_t f, int st)
{
        for (size_t i = 0; i < NF; i++)
                if (fields[i] == f)
                        w->row[i].status = st;
}

static void push(world *w, int64_t ts)
{
        assert_int_equal(cache_group_push(w->c, w->group, ts, w->row), 0);
}

static void healthy(world *w)
{
        set(w, FLD_GPU_TEMP, 45);
        set(w, FLD_SLOWDOWN_TEMP, 89);
        set(w, FLD_SHUTDOWN_TEMP, 92);
        set(w, FLD_PCIE_LINK_GEN, 5);
        set(w, FLD_PCIE_LINK_WIDTH, 16);
        set(w, FLD_POWER_USAGE, 300);
        set(w, FLD_CLOCKS_EVENT_REASONS, 0x4); /* SW power cap: not a hardware slowdown */
}

static char last_detail[sizeof(((rule_result *)0)->detail)]; /* of the last eval() */

static enum rule_state eval(world *w, const char *rule, bool active, enum health_severity *sev)
{
        rule_result res = {0};
        rule_ctx c = {.cache = w->c,
                      .gpu = 0,
                      .g = &w->g,
                      .cfg = &w->cfg,
                      .host = &w->host,
                      .now_us = NOW,
                      .active = active};
        int ri = health_rule_find(rule);

        assert_true(ri >= 0);
        health_rule_eval((size_t)ri, &c, &res);
        if (sev)
                *sev = res.sev;
        snprintf(last_detail, sizeof(last_detail), "%s", res.detail);
        return res.state;
}

static void world_free(world *w)
{
        w->c = cache_free(w->c);
}

/* ---- cases ---- */

static void test_table(void **state)
{
        (void)state;
        assert_true(health_n_rules >= 18);
        for (size_t i = 0; i < health_n_rules; i++) {
                assert_non_null(health_rules[i].eval);
                assert_true(strlen(health_rules[i].action) > 10);
                assert_int_equal(health_rule_find(health_rules[i].name), (int)i);
                assert_true(health_condition_valid(health_rules[i].name));
        }
        assert_true(health_condition_valid("xid_79"));
        assert_true(health_condition_valid("critical"));
        assert_false(health_condition_valid("xid_"));
        assert_false(health_condition_valid("temprature"));
}

/* rules.def "needs": a rule checks nothing on a GPU without one of its fields, so its system is
 * not monitored there (report.c); every field a rule needs is one the world collects. */
static void test_rule_needs(void **state)
{
        world w;
        int pcie = health_rule_find("pcie_replay_rate"), temp = health_rule_find("temperature");
        int lost = health_rule_find("gpu_lost");

        (void)state;
        for (size_t i = 0; i < health_n_rules; i++)
                for (size_t k = 0; k < RULE_MAX_NEEDS && health_rules[i].needs[k]; k++)
                        assert_non_null(field_by_id(health_rules[i].needs[k]));
        world_init(&w);
        healthy(&w);
        push(&w, NOW - USEC_PER_SEC);
        assert_true(health_rule_monitors((size_t)pcie, w.c, 0));
        assert_true(health_rule_monitors((size_t)temp, w.c, 0));
        assert_true(health_rule_monitors((size_t)lost, w.c, 0)); /* needs nothing */
        set_status(&w, FLD_PCIE_REPLAY_COUNTER, -EOPNOTSUPP);
        push(&w, NOW);
        assert_false(health_rule_monitors((size_t)pcie, w.c, 0));
        assert_true(health_rule_monitors((size_t)temp, w.c, 0));
        /* a GPU slot with nothing collected: no field rule checks anything */
        assert_false(health_rule_monitors((size_t)temp, w.c, 1));
        world_free(&w);
}

static void test_pcie_limits(void **state)
{
        (void)state;
        /* DCGM per-lane per-minute: gen3 0.48, gen4 0.96, gen5 1.92 */
        assert_int_equal(health_pcie_replay_limit(3, 16), 8);
        assert_int_equal(health_pcie_replay_limit(4, 16), 16);
        assert_int_equal(health_pcie_replay_limit(5, 16), 31);
        assert_int_equal(health_pcie_replay_limit(1, 1), 1);
        assert_int_equal(health_pcie_replay_limit(6, 8), 31);
}

static void test_pcie_replay(void **state)
{
        world w;
        (void)state;
        world_init(&w);
        healthy(&w);
        /* 30 replays a minute on gen5 x16 (limit 31): must not fire */
        for (int i = 0; i <= 6; i++) {
                set(&w, FLD_PCIE_REPLAY_COUNTER, 1000 + i * 5);
                push(&w, NOW - (60 - i * 10) * USEC_PER_SEC);
        }
        assert_int_equal(eval(&w, "pcie_replay_rate", false, NULL), RULE_CLEAR);
        world_free(&w);

        /* the same 40 replays on a link trained down to gen3 x16 (limit 8): fires */
        world_init(&w);
        healthy(&w);
        set(&w, FLD_PCIE_LINK_GEN, 3);
        for (int i = 0; i <= 4; i++) {
                set(&w, FLD_PCIE_REPLAY_COUNTER, 1000 + i * 10);
                push(&w, NOW - (40 - i * 10) * USEC_PER_SEC);
        }
        assert_int_equal(eval(&w, "pcie_replay_rate", false, NULL), RULE_FIRING);
        world_free(&w);

        /* a counter that wraps (huge → small) is a reset, not 2^32 replays */
        world_init(&w);
        healthy(&w);
        set(&w, FLD_PCIE_REPLAY_COUNTER, 4294967290LL);
        push(&w, NOW - 20 * USEC_PER_SEC);
        set(&w, FLD_PCIE_REPLAY_COUNTER, 3);
        push(&w, NOW - 10 * USEC_PER_SEC);
        assert_int_equal(eval(&w, "pcie_replay_rate", false, NULL), RULE_CLEAR);
        world_free(&w);
}

static void test_memory_rules(void **state)
{
        static const struct {
                const char *rule;
                uint16_t field;
                int64_t ok, bad;
                enum health_severity sev;
        } cases[] = {
            {"ecc_dbe_volatile", FLD_ECC_DBE_VOL_TOTAL, 0, 1, HEALTH_FAIL},
            {"retired_pages_pending", FLD_RETIRED_PENDING, 0, 1, HEALTH_WARN},
            {"row_remap_failure", FLD_ROW_REMAP_FAILURE, 0, 1, HEALTH_FAIL},
            {"row_remap_pending", FLD_ROW_REMAP_PENDING, 0, 1, HEALTH_WARN},
            {"row_remap_uncorrectable", FLD_UNCORRECTABLE_REMAPPED_ROWS, 511, 512, HEALTH_WARN},
            {"retired_pages_limit", FLD_RETIRED_SBE, 62, 63, HEALTH_FAIL},
        };
        (void)state;
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
                world w;
                enum health_severity sev;
                world_init(&w);
                healthy(&w);
                set(&w, cases[i].field, cases[i].ok);
                push(&w, NOW - USEC_PER_SEC);
                assert_int_equal(eval(&w, cases[i].rule, false, NULL), RULE_CLEAR);
                set(&w, cases[i].field, cases[i].bad);
                push(&w, NOW);
                assert_int_equal(eval(&w, cases[i].rule, false, &sev), RULE_FIRING);
                assert_int_equal(sev, cases[i].sev);
                world_free(&w);
        }
}

static void test_retired_dbe_rate(void **state)
{
        world w;
        (void)state;
        world_init(&w);
        healthy(&w);
        set(&w, FLD_RETIRED_DBE, 16);
        push(&w, NOW - 100 * USEC_PER_SEC);
        push(&w, NOW);
        /* over the soft limit but no new page: DCGM does not fail it */
        assert_int_equal(eval(&w, "retired_dbe_rate", false, NULL), RULE_CLEAR);
        set(&w, FLD_RETIRED_DBE, 18);
        push(&w, NOW);
        assert_int_equal(eval(&w, "retired_dbe_rate", false, NULL), RULE_FIRING);
        world_free(&w);
}

static void test_violations(void **state)
{
        const char *rules[] = {"thermal_violation", "power_violation"};
        const uint16_t f[] = {FLD_THERMAL_VIOLATION, FLD_POWER_VIOLATION};
        (void)state;
        for (int k = 0; k < 2; k++) {
                world w;
                world_init(&w);
                healthy(&w);
                set(&w, f[k], 123456789);
                push(&w, NOW - 20 * USEC_PER_SEC);
                push(&w, NOW - 10 * USEC_PER_SEC);
                /* a counter that stands still: no violation (constant-2gpu has a big one) */
                assert_int_equal(eval(&w, rules[k], false, NULL), RULE_CLEAR);
                set(&w, f[k], 123456789 + 5000000);
                push(&w, NOW);
                /* power: capped with the SW power cap reason, no limits known: DCGM's WARN as
                 * state, no incident */
                assert_int_equal(eval(&w, rules[k], false, NULL),
                                 k == 0 ? RULE_FIRING : RULE_NOTED);
                world_free(&w);
        }
}

/* Power capping: at the GPU's own limit is state (RULE_NOTED); below the default limit, with a
 * HW brake, far under the limit or past health.power.sustain it fires; an open one holds. */
static void power_world(world *w, int64_t enforced, int64_t draw, int64_t reasons)
{
        world_init(w);
        healthy(w);
        set(w, FLD_POWER_LIMIT_DEFAULT, 700);
        set(w, FLD_ENFORCED_POWER_LIMIT, enforced);
        set(w, FLD_CLOCKS_EVENT_REASONS, reasons);
        set(w, FLD_POWER_USAGE, draw);
        for (int i = 20; i >= 0; i--) {
                set(w, FLD_POWER_VIOLATION, (int64_t)(20 - i) * 900000000);
                push(w, NOW - i * USEC_PER_SEC);
        }
}

static void test_power_capping(void **state)
{
        world w;
        (void)state;
        power_world(&w, 700, 690, 0x4); /* full load at its own limit */
        assert_int_equal(eval(&w, "power_violation", false, NULL), RULE_NOTED);
        assert_int_equal(eval(&w, "power_violation", true, NULL), RULE_FIRING); /* holds */
        w.cfg.power_sustain_us = 15 * USEC_PER_SEC; /* capped 90 % of 20 s */
        assert_int_equal(eval(&w, "power_violation", false, NULL), RULE_FIRING);
        w.cfg.power_sustain_us = 60 * USEC_PER_SEC; /* history shorter than sustain */
        assert_int_equal(eval(&w, "power_violation", false, NULL), RULE_NOTED);
        world_free(&w);
        power_world(&w, 450, 449, 0x4); /* enforced below the default */
        assert_int_equal(eval(&w, "power_violation", false, NULL), RULE_FIRING);
        world_free(&w);
        power_world(&w, 700, 690, 0x84); /* HW power brake */
        assert_int_equal(eval(&w, "power_violation", false, NULL), RULE_FIRING);
        world_free(&w);
        power_world(&w, 700, 300, 0x4); /* capped at 43 % of the limit */
        assert_int_equal(eval(&w, "power_violation", false, NULL), RULE_FIRING);
        world_free(&w);
}

static void test_power_unreadable(void **state)
{
        world w;
        (void)state;
        world_init(&w);
        healthy(&w);
        set_status(&w, FLD_POWER_USAGE, -EOPNOTSUPP);
        push(&w, NOW);
        /* not supported is not unreadable */
        assert_int_equal(eval(&w, "power_unreadable", false, NULL), RULE_CLEAR);
        set_status(&w, FLD_POWER_USAGE, -EIO);
        push(&w, NOW);
        assert_int_equal(eval(&w, "power_unreadable", false, NULL), RULE_FIRING);
        world_free(&w);
}

static void test_clock_throttle(void **state)
{
        world w;
        (void)state;
        world_init(&w);
        healthy(&w);
        /* one HW slowdown blip among normal samples: not sustained */
        for (int i = 10; i >= 0; i--) {
                set(&w, FLD_CLOCKS_EVENT_REASONS, i == 3 ? 0x8 : 0x4);
                push(&w, NOW - i * USEC_PER_SEC);
        }
        assert_int_equal(eval(&w, "clock_throttle_hw", false, NULL), RULE_CLEAR);
        world_free(&w);

        world_init(&w);
        healthy(&w);
        for (int i = 10; i >= 0; i--) {
                set(&w, FLD_CLOCKS_EVENT_REASONS, 0x40 | 0x4);
                push(&w, NOW - i * USEC_PER_SEC);
        }
        assert_int_equal(eval(&w, "clock_throttle_hw", false, NULL), RULE_FIRING);
        /* open: clears as soon as the latest sample has no hardware reason */
        set(&w, FLD_CLOCKS_EVENT_REASONS, 0x4);
        push(&w, NOW);
        assert_int_equal(eval(&w, "clock_throttle_hw", true, NULL), RULE_CLEAR);
        world_free(&w);

        /* the latest sample alone has one (the window is read, not only the latest sample):
         * no new incident, an open one holds */
        world_init(&w);
        healthy(&w);
        for (int i = 10; i >= 0; i--) {
                set(&w, FLD_CLOCKS_EVENT_REASONS, i == 0 ? 0x8 : 0x4);
                push(&w, NOW - i * USEC_PER_SEC);
        }
        assert_int_equal(eval(&w, "clock_throttle_hw", false, NULL), RULE_CLEAR);
        assert_int_equal(eval(&w, "clock_throttle_hw", true, NULL), RULE_FIRING);
        world_free(&w);
}

static void test_temperature_hysteresis(void **state)
{
        world w;
        enum health_severity sev;
        (void)state;
        world_init(&w);
        healthy(&w);
        set(&w, FLD_GPU_TEMP, 84);
        push(&w, NOW);
        assert_int_equal(eval(&w, "temperature", false, NULL), RULE_CLEAR);
        set(&w, FLD_GPU_TEMP, 85);
        push(&w, NOW);
        assert_int_equal(eval(&w, "temperature", false, &sev), RULE_FIRING);
        assert_int_equal(sev, HEALTH_WARN);
        /* noise just under the threshold keeps an open incident open ... */
        set(&w, FLD_GPU_TEMP, 83);
        push(&w, NOW);
        assert_int_equal(eval(&w, "temperature", true, NULL), RULE_FIRING);
        /* ... and it clears only below threshold - hysteresis */
        set(&w, FLD_GPU_TEMP, 81);
        push(&w, NOW);
        assert_int_equal(eval(&w, "temperature", true, NULL), RULE_CLEAR);
        set(&w, FLD_GPU_TEMP, 91);
        push(&w, NOW);
        assert_int_equal(eval(&w, "temperature", false, &sev), RULE_FIRING);
        assert_int_equal(sev, HEALTH_FAIL);
        world_free(&w);
}

static void test_gpu_temps(void **state)
{
        world w;
        (void)state;
        world_init(&w);
        healthy(&w);
        w.cfg.temp_warning = 150; /* only the GPU's own limits matter here */
        w.cfg.temp_critical = 160;
        set(&w, FLD_GPU_TEMP, 88);
        push(&w, NOW);
        assert_int_equal(eval(&w, "temperature_slowdown", false, NULL), RULE_CLEAR);
        assert_int_equal(eval(&w, "temperature_shutdown", false, NULL), RULE_CLEAR);
        set(&w, FLD_GPU_TEMP, 89);
        push(&w, NOW);
        assert_int_equal(eval(&w, "temperature_slowdown", false, NULL), RULE_FIRING);
        assert_int_equal(eval(&w, "temperature_shutdown", false, NULL), RULE_FIRING);
        /* unsupported limits: say nothing */
        set_status(&w, FLD_SLOWDOWN_TEMP, -EOPNOTSUPP);
        push(&w, NOW);
        assert_int_equal(eval(&w, "temperature_slowdown", false, NULL), RULE_SKIP);
        world_free(&w);
}

static void test_gpu_state_rules(void **state)
{
        world w;
        rule_result res;
        rule_ctx c;
        (void)state;
        world_init(&w);
        healthy(&w);
        push(&w, NOW);
        assert_int_equal(eval(&w, "gpu_lost", false, NULL), RULE_CLEAR);
        w.g.up = false;
        w.g.lost_since_us = NOW - 5 * USEC_PER_SEC;
        assert_int_equal(eval(&w, "gpu_lost", false, NULL), RULE_FIRING);
        /* a lost GPU says nothing about its PCIe counters */
        assert_int_equal(eval(&w, "pcie_replay_rate", false, NULL), RULE_SKIP);
        /* and it comes back */
        w.g.up = true;
        assert_int_equal(eval(&w, "gpu_lost", true, NULL), RULE_CLEAR);
        c = (rule_ctx){.cache = w.c,
                       .g = &w.g,
                       .cfg = &w.cfg,
                       .host = &w.host,
                       .now_us = NOW,
                       .unresponsive = true};
        health_rule_eval((size_t)health_rule_find("gpu_unresponsive"), &c, &res);
        assert_int_equal(res.state, RULE_FIRING);
        world_free(&w);
}

static void test_host_rules(void **state)
{
        world w;
        enum health_severity sev;
        (void)state;
        world_init(&w);
        assert_int_equal(eval(&w, "gpu_count", false, NULL), RULE_CLEAR); /* unchecked */
        w.cfg.expected_gpus = 8;
        assert_int_equal(eval(&w, "gpu_count", false, NULL), RULE_CLEAR);
        w.host.gpu_count = 7;
        assert_int_equal(eval(&w, "gpu_count", false, NULL), RULE_FIRING);

        w.host.disk_pct = 89;
        assert_int_equal(eval(&w, "disk_usage", false, NULL), RULE_CLEAR);
        w.host.disk_pct = 90;
        assert_int_equal(eval(&w, "disk_usage", false, &sev), RULE_FIRING);
        assert_int_equal(sev, HEALTH_WARN);
        w.host.disk_pct = 89; /* hysteresis: still open at 89 */
        assert_int_equal(eval(&w, "disk_usage", true, NULL), RULE_FIRING);
        w.host.disk_pct = 97;
        assert_int_equal(eval(&w, "disk_usage", false, &sev), RULE_FIRING);
        assert_int_equal(sev, HEALTH_FAIL);
        /* read every 10 s: the incident says when, never passes it off as now */
        assert_non_null(strstr(last_detail, "read time unknown"));
        w.host.os_read_us = INT64_C(1796577601) * USEC_PER_SEC + 250000;
        assert_int_equal(eval(&w, "disk_usage", false, NULL), RULE_FIRING);
        assert_non_null(strstr(last_detail, "97% full (critical at "));
        assert_non_null(strstr(last_detail, "%; read 2026-12-06T17:20:01Z)"));

        w.host.rss_bytes = 300ULL << 20;
        assert_int_equal(eval(&w, "daemon_memory", false, NULL), RULE_FIRING);
        assert_non_null(strstr(last_detail, "(read 2026-12-06T17:20:01Z)"));
        w.host.rss_bytes = 240ULL << 20; /* below the limit, above 90 %: stays open */
        assert_int_equal(eval(&w, "daemon_memory", false, NULL), RULE_CLEAR);
        assert_int_equal(eval(&w, "daemon_memory", true, NULL), RULE_FIRING);
        world_free(&w);
}

static void test_collection_slow(void **state)
{
        world w;
        enum health_severity sev;
        (void)state;
        world_init(&w);
        w.cfg.collection_stretched_after_us = 300 * USEC_PER_SEC;
        assert_int_equal(eval(&w, "collection_slow", false, NULL), RULE_CLEAR);
        /* stretched, but not for long yet */
        w.host.stretched_since_us[TIER_FAST] = NOW - 299 * USEC_PER_SEC;
        assert_int_equal(eval(&w, "collection_slow", false, NULL), RULE_CLEAR);
        w.host.stretched_since_us[TIER_FAST] = NOW - 300 * USEC_PER_SEC;
        assert_int_equal(eval(&w, "collection_slow", false, &sev), RULE_FIRING);
        assert_int_equal(sev, HEALTH_WARN);
        /* the slow tier counts too; back to the interval: clear at once */
        w.host.stretched_since_us[TIER_FAST] = 0;
        w.host.stretched_since_us[TIER_SLOW] = NOW - 400 * USEC_PER_SEC;
        assert_int_equal(eval(&w, "collection_slow", false, NULL), RULE_FIRING);
        w.host.stretched_since_us[TIER_SLOW] = 0;
        assert_int_equal(eval(&w, "collection_slow", true, NULL), RULE_CLEAR);
        /* 0 = never */
        w.cfg.collection_stretched_after_us = 0;
        w.host.stretched_since_us[TIER_FAST] = NOW - 4000 * USEC_PER_SEC;
        assert_int_equal(eval(&w, "collection_slow", false, NULL), RULE_CLEAR);
        world_free(&w);
}

static void test_extra_conditions(void **state)
{
        incident in = {.gpu = 2, .condition = "anomaly_peer_GPU_TEMP", .severity = HEALTH_WARN};
        (void)state;
        assert_true(health_condition_valid("collection_slow"));
        assert_true(health_condition_valid("anomaly_peer_GPU_TEMP"));
        assert_true(health_condition_valid("anomaly_baseline_POWER_USAGE"));
        assert_false(health_condition_valid("anomaly_peer_NOPE"));
        assert_false(health_condition_valid("anomaly_sideways_GPU_TEMP"));
        assert_true(policy_matches("anomaly_peer_GPU_TEMP", &in));
        assert_true(policy_matches("warning", &in));
        assert_false(policy_matches("anomaly_baseline_GPU_TEMP", &in));
        assert_int_equal(health_action_from_name("reset_gpu"), HEALTH_ACT_RESET_GPU);
}

static void test_xid_classes(void **state)
{
        static const uint32_t devastating[] = {48, 74, 79, 95, 119, 120, 140, 64};
        (void)state;
        for (size_t i = 0; i < sizeof(devastating) / sizeof(devastating[0]); i++)
                assert_int_equal(xid_lookup(devastating[i])->severity, XID_SEV_CRITICAL);
        assert_int_equal(xid_lookup(94)->severity, XID_SEV_WARNING);
        assert_int_equal(health_xid_system(42), HEALTH_SYS_PCIE);
        assert_int_equal(health_xid_system(63), HEALTH_SYS_MEMORY);
        assert_int_equal(health_xid_system(61), HEALTH_SYS_THERMAL);
        assert_int_equal(health_xid_system(54), HEALTH_SYS_POWER);
        assert_int_equal(health_xid_system(79), HEALTH_SYS_GPU);
        /* every code GPUd lists with a repair action is catalogued */
        static const uint32_t gpud[] = {158, 163, 166, 167, 169, 170, 172, 173};
        for (size_t i = 0; i < sizeof(gpud) / sizeof(gpud[0]); i++)
                assert_true(xid_lookup(gpud[i])->known);
}

static void test_payloads(void **state)
{
        incident in = {.id = 7,
                       .gpu = 1,
                       .condition = "xid_79",
                       .xid = 79,
                       .severity = HEALTH_FAIL,
                       .state = INCIDENT_OPEN,
                       .count = 2,
                       .first_us = NOW,
                       .last_us = NOW};
        json_t *a, *labels;
        char sig[128];
        (void)state;
        snprintf(in.uuid, sizeof(in.uuid), "GPU-1");
        snprintf(in.summary, sizeof(in.summary), "XID 79: GPU has fallen off the bus");
        a = notifier_am_payload(&in, "node1", NOW, 60 * USEC_PER_SEC);
        assert_non_null(a);
        labels = json_object_get(json_array_get(a, 0), "labels");
        assert_string_equal(json_string_value(json_object_get(labels, "alertname")), "VigilXid79");
        assert_string_equal(json_string_value(json_object_get(labels, "severity")), "critical");
        assert_string_equal(json_string_value(json_object_get(labels, "gpu")), "1");
        assert_string_equal(json_string_value(json_object_get(labels, "hostname")), "node1");
        assert_null(json_object_get(json_array_get(a, 0), "endsAt"));
        json_decref(a);
        in.state = INCIDENT_RESOLVED;
        in.resolved_us = NOW + USEC_PER_SEC;
        a = notifier_am_payload(&in, "node1", NOW, 60 * USEC_PER_SEC);
        assert_non_null(json_object_get(json_array_get(a, 0), "endsAt"));
        json_decref(a);
        /* endsAt as Prometheus sets ValidUntil: 4 x max(resend, evaluation interval) */
        assert_int_equal(notifier_valid_for(300 * USEC_PER_SEC, USEC_PER_SEC), 1200 * USEC_PER_SEC);
        assert_int_equal(notifier_valid_for(USEC_PER_SEC, 10 * USEC_PER_SEC), 40 * USEC_PER_SEC);
        /* RFC 4231 test case 2 */
        assert_int_equal(
            notifier_sign("Jefe", "what do ya want for nothing?", 28, sig, sizeof(sig)), 0);
        assert_string_equal(
            sig, "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");
        assert_true(policy_matches("critical", &in));
        assert_true(policy_matches("xid", &in));
        assert_true(policy_matches("xid_79", &in));
        assert_false(policy_matches("temperature", &in));
}

/* The incident store alone: one incident per (GPU, condition) until resolved, resolution only
 * after resolve_after of continuous clear, an XID clears xid_hold after its last report, ack. */
static void test_incident_store(void **state)
{
        static incident_store s; /* zeroed, as incidents_init requires */
        health_config cfg;
        incident *a, *b;
        const int64_t t0 = INT64_C(1767225600) * USEC_PER_SEC;
        json_t *j = NULL;

        (void)state;
        health_config_defaults(&cfg);
        incidents_init(&s, NULL);
        a = incidents_open(&s, 0, "GPU-0", "temperature", health_rule_find("temperature"),
                           HEALTH_SYS_THERMAL, HEALTH_WARN, "hot", "cool it", "86 C", t0);
        assert_non_null(a);
        assert_ptr_equal(incidents_find_open(&s, 0, "temperature"), a);
        assert_null(incidents_find_open(&s, 1, "temperature"));
        incident_holds(a, HEALTH_FAIL, "91 C", t0 + USEC_PER_SEC); /* escalates */
        assert_int_equal(a->severity, HEALTH_FAIL);
        assert_int_equal(incidents_worst(&s, 0, HEALTH_SYS_THERMAL), HEALTH_FAIL);
        assert_int_equal(incidents_worst(&s, -1, -1), HEALTH_PASS);
        incident_clears(a, t0 + 2 * USEC_PER_SEC);
        incidents_resolve(&s, &cfg, t0 + 2 * USEC_PER_SEC + cfg.resolve_after_us - 1);
        assert_int_equal(a->state, INCIDENT_OPEN);
        incidents_resolve(&s, &cfg, t0 + 2 * USEC_PER_SEC + cfg.resolve_after_us);
        assert_int_equal(a->state, INCIDENT_RESOLVED);
        assert_null(incidents_find_open(&s, 0, "temperature"));
        /* an XID: active until xid_hold after the report, then resolve_after */
        b = incidents_open(&s, 1, "GPU-1", "xid_79", -1, HEALTH_SYS_GPU, HEALTH_FAIL, "XID 79",
                           "reset", "fell off", t0);
        b->xid = 79;
        assert_int_equal(incidents_ack(&s, b->id, "ops", &j), 0);
        assert_string_equal(json_string_value(json_object_get(j, "state")), "acknowledged");
        json_decref(j);
        assert_int_equal(incidents_ack(&s, a->id, "ops", NULL), -EALREADY);
        assert_int_equal(incidents_ack(&s, 999, "ops", NULL), -ENOENT);
        incidents_resolve(&s, &cfg, t0 + cfg.xid_hold_us);
        assert_false(b->active);
        assert_int_equal(b->state, INCIDENT_ACKNOWLEDGED);
        incidents_resolve(&s, &cfg, t0 + cfg.xid_hold_us + cfg.resolve_after_us);
        assert_int_equal(b->state, INCIDENT_RESOLVED);
        incidents_release(&s);
}

static uint64_t evaluations(health *h)
{
        json_t *j = health_json(h);
        uint64_t n = (uint64_t)json_integer_value(json_object_get(j, "evaluations"));

        json_decref(j);
        return n;
}

/* The health thread evaluates on "sweep done" only: no timer of its own (it used to wake every
 * second), one evaluation per kick. The sampler is not started, so only health_on_sweep kicks. */
/* The fake backend on two constant GPUs, a cache and a sampler (not started). */
static void open_sampler(backend **be, cache **ca, sampler **sa)
{
        backend_options bo = {.simulate = 1};
        char err[512], scen[4096], lib[4096];
        const char *src = getenv("VIGIL_SOURCE_DIR"), *bld = getenv("VIGIL_BUILD_DIR");

        snprintf(scen, sizeof(scen), "%s/tests/scenarios/constant-2gpu.yaml", src ? src : ".");
        snprintf(lib, sizeof(lib), "%s/lib/libvigil-fakenvml.so", bld ? bld : "build");
        setenv("VIGIL_FAKENVML", lib, 1);
        bo.scenario = scen;
        assert_int_equal(backend_open(&bo, be, err, sizeof(err)), 0);
        assert_int_equal(cache_new(sampler_max_gpus(), ca), 0);
        assert_int_equal(sampler_new(&(sampler_options){.backend = *be,
                                                        .cache = *ca,
                                                        .fast_us = USEC_PER_SEC,
                                                        .slow_us = 10 * USEC_PER_SEC,
                                                        .keep_max_age_us = 60 * USEC_PER_SEC,
                                                        .keep_max_samples = 60},
                                     sa),
                         0);
}

static void test_sweep_driven(void **state)
{
        backend *be = NULL;
        cache *ca = NULL;
        sampler *sa = NULL;
        health *h = NULL;
        health_config cfg;
        int64_t t0;

        (void)state;
        open_sampler(&be, &ca, &sa);
        health_config_defaults(&cfg);
        assert_int_equal(health_new(&(health_options){.sampler = sa,
                                                      .cache = ca,
                                                      .backend = be,
                                                      .data_dir = "",
                                                      .hostname = "node",
                                                      .cfg = &cfg},
                                    &h),
                         0);
        assert_int_equal(health_start(h), 0);
        usleep(1500000); /* the old thread evaluated once a second without sweeps */
        assert_int_equal(evaluations(h), 0);
        for (unsigned want = 1; want <= 3; want++) {
                health_on_sweep(h, TIER_FAST);
                t0 = time_mono_us();
                while (evaluations(h) < want && time_mono_us() - t0 < 2 * USEC_PER_SEC)
                        usleep(5000);
                assert_int_equal(evaluations(h), want);
        }
        usleep(300000);
        assert_int_equal(evaluations(h), 3);
        h = health_free(h);
        sa = sampler_free(sa);
        ca = cache_free(ca);
        be = backend_close(be);
}

/* The data directory's use and vigild's RSS are read at most every HOST_OS_FACTS_US; the
 * sampler's facts on every call. */
static void test_host_os_facts(void **state)
{
        backend *be = NULL;
        cache *ca = NULL;
        sampler *sa = NULL;
        host_os_facts os = {0};
        host_facts f;
        const int64_t t0 = 5 * USEC_PER_SEC;

        (void)state;
        open_sampler(&be, &ca, &sa);
        health_host_facts(sa, "/tmp", &os, t0, &f);
        assert_int_equal(os.read_at_us, t0);
        assert_true(f.disk_pct >= 0 && f.disk_pct <= 100);
        assert_true(f.rss_bytes > 0);
        assert_int_equal(f.gpu_count, 2);
        /* the wall time of the reading, for the incident text */
        assert_true(f.os_read_us > 0 && f.os_read_us == os.read_wall_us);
        /* Within the period: the last reading (and its time), not a new one. */
        os.disk_pct = 42;
        os.rss_bytes = 1;
        os.read_wall_us = 1234 * USEC_PER_SEC;
        health_host_facts(sa, "/nonexistent-vigil-dir", &os, t0 + HOST_OS_FACTS_US - 1, &f);
        assert_int_equal(f.disk_pct, 42);
        assert_int_equal(f.rss_bytes, 1);
        assert_int_equal(f.os_read_us, 1234 * USEC_PER_SEC);
        assert_int_equal(os.read_at_us, t0);
        /* At the period: read again (the directory is gone: unknown). */
        health_host_facts(sa, "/nonexistent-vigil-dir", &os, t0 + HOST_OS_FACTS_US, &f);
        assert_int_equal(f.disk_pct, -1);
        assert_true(f.rss_bytes > 1);
        assert_true(f.os_read_us > 1234 * USEC_PER_SEC);
        assert_int_equal(os.read_at_us, t0 + HOST_OS_FACTS_US);
        /* A clock that went back reads again rather than trusting a reading "from the future". */
        health_host_facts(sa, "/tmp", &os, t0, &f);
        assert_true(f.disk_pct >= 0);
        assert_int_equal(os.read_at_us, t0);
        sa = sampler_free(sa);
        ca = cache_free(ca);
        be = backend_close(be);
}

/* An exec hook gets the incident on stdin; once it closes its output the runner waits for it to
 * exit (a pidfd, no 10 ms polling) and still kills it at exec_timeout. */
static void test_exec_hook(void **state)
{
        char path[64], cmd[256];
        health_policy po[2] = {0};
        health_config cfg;
        policy_runner *p = NULL;
        incident in = {.id = 7, .gpu = 0, .condition = "temperature", .severity = HEALTH_WARN};
        FILE *f;
        char got[4096] = "";
        int64_t t0, dt;

        (void)state;
        snprintf(path, sizeof(path), "/tmp/vigil-test-exec-%d", (int)getpid());
        snprintf(cmd, sizeof(cmd), "cat > %s; exec >&- 2>&-; sleep 0.3", path);
        snprintf(po[0].condition, sizeof(po[0].condition), "temperature");
        po[0].actions = 1u << HEALTH_ACT_EXEC;
        snprintf(po[0].exec, sizeof(po[0].exec), "%s", cmd);
        po[0].exec_timeout_us = 5 * USEC_PER_SEC;
        snprintf(po[1].condition, sizeof(po[1].condition), "xid");
        po[1].actions = 1u << HEALTH_ACT_EXEC;
        snprintf(po[1].exec, sizeof(po[1].exec), "exec >&- 2>&-; sleep 10");
        po[1].exec_timeout_us = 400 * USEC_PER_MSEC;
        health_config_defaults(&cfg);
        cfg.policies = po;
        cfg.n_policies = 2;
        assert_int_equal(policy_new(&cfg, NULL, NULL, NULL, &p), 0);
        t0 = time_mono_us();
        policy_run(p, &in, time_real_us());
        dt = time_mono_us() - t0;
        assert_true(dt >= 250 * USEC_PER_MSEC && dt < 3 * USEC_PER_SEC);
        f = fopen(path, "r");
        assert_non_null(f);
        assert_true(fread(got, 1, sizeof(got) - 1, f) > 0);
        fclose(f);
        unlink(path);
        assert_non_null(strstr(got, "\"temperature\""));
        in.xid = 79;
        snprintf(in.condition, sizeof(in.condition), "xid_79");
        t0 = time_mono_us();
        policy_run(p, &in, time_real_us());
        dt = time_mono_us() - t0;
        assert_true(dt >= 350 * USEC_PER_MSEC && dt < 3 * USEC_PER_SEC); /* killed */
        assert_int_equal(policy_actions_total(p), 2);
        p = policy_free(p);
}

struct diag_calls {
        int n;              /* calls */
        int level, gpu;     /* of the last call */
        uint64_t incident;  /* of the last call */
        char condition[48]; /* of the last call */
        int answer;         /* 0, or the -errno to return */
};

static int fake_diag(void *ud, int level, int gpu, uint64_t incident_id, const char *condition,
                     char *id, size_t idlen, char *err, size_t errlen)
{
        struct diag_calls *c = ud;
        c->n++;
        c->level = level;
        c->gpu = gpu;
        c->incident = incident_id;
        snprintf(c->condition, sizeof(c->condition), "%s", condition);
        if (c->answer < 0) {
                snprintf(err, errlen, "diagnostic run 'd-1-1' is in progress");
                return c->answer;
        }
        snprintf(id, idlen, "d-100-%d", c->n);
        return 0;
}

/* The diag action reaches the diag module only through the callback the daemon wires in: it
 * passes the policy's level and the incident's GPU (every GPU with diag_gpus: all), and the
 * run id lands in the incident's action log; a busy service is "skipped", no callback is
 * "refused", a dry run calls nothing. */
static void test_diag_action(void **state)
{
        char dir[] = "/tmp/vigil-test-policy-XXXXXX", db[64], err[256];
        store_options so = {.path = db};
        store *st = NULL;
        health_policy po[1] = {0};
        health_config cfg;
        policy_runner *p = NULL;
        struct diag_calls calls = {0};
        incident in = {
            .id = 12, .gpu = 1, .condition = "xid_48", .xid = 48, .severity = HEALTH_FAIL};
        json_t *log = NULL;
        (void)state;

        assert_non_null(mkdtemp(dir));
        snprintf(db, sizeof(db), "%s/vigil.db", dir);
        assert_int_equal(store_open(&so, &st, NULL, err, sizeof(err)), 0);
        snprintf(po[0].condition, sizeof(po[0].condition), "xid");
        po[0].actions = 1u << HEALTH_ACT_DIAG;
        po[0].diag_level = 2;
        health_config_defaults(&cfg);
        cfg.policies = po;
        cfg.n_policies = 1;
        assert_int_equal(policy_new(&cfg, NULL, NULL, st, &p), 0);
        policy_run(p, &in, time_real_us()); /* no callback wired */
        assert_int_equal(calls.n, 0);
        policy_set_diag(p, fake_diag, &calls);
        policy_run(p, &in, time_real_us());
        assert_int_equal(calls.n, 1);
        assert_int_equal(calls.level, 2);
        assert_int_equal(calls.gpu, 1);
        assert_int_equal(calls.incident, 12);
        assert_string_equal(calls.condition, "xid_48");
        calls.answer = -EBUSY;
        policy_run(p, &in, time_real_us());
        po[0].diag_gpus = 1;
        po[0].dry_run = true;
        policy_set(p, po, 1);
        policy_run(p, &in, time_real_us());
        assert_int_equal(calls.n, 2); /* dry run: nothing started */
        po[0].dry_run = false;
        calls.answer = 0;
        policy_set(p, po, 1);
        policy_run(p, &in, time_real_us());
        assert_int_equal(calls.gpu, -1); /* diag_gpus: all */
        assert_int_equal(policy_actions_json(st, 12, &log), 0);
        assert_int_equal(json_array_size(log), 5);
        static const char *const want[][2] = {
            {"refused", "diagnostics are not available"},
            {"done", "level 2 on GPU 1: run d-100-1 started"},
            {"skipped", "level 2 on GPU 1: diagnostic run 'd-1-1' is in progress"},
            {"skipped", "level 2 on every GPU"},
            {"done", "level 2 on every GPU: run d-100-3 started"},
        };
        for (size_t i = 0; i < 5; i++) {
                json_t *a = json_array_get(log, i);
                assert_string_equal(json_string_value(json_object_get(a, "action")), "diag");
                assert_string_equal(json_string_value(json_object_get(a, "result")), want[i][0]);
                assert_string_equal(json_string_value(json_object_get(a, "detail")), want[i][1]);
        }
        assert_true(json_is_true(json_object_get(json_array_get(log, 3), "dry_run")));
        json_decref(log);
        assert_int_equal(policy_actions_json(st, 13, &log), 0); /* another incident: none */
        assert_int_equal(json_array_size(log), 0);
        json_decref(log);
        p = policy_free(p);
        st = store_close(st);
        static const char *const files[] = {"vigil.db", "vigil.db-wal", "vigil.db-shm",
                                            "vigil.db.lock"};
        for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
                snprintf(db, sizeof(db), "%s/%s", dir, files[i]);
                unlink(db);
        }
        assert_int_equal(rmdir(dir), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
            cmocka_unit_test(test_table),
            cmocka_unit_test(test_rule_needs),
            cmocka_unit_test(test_pcie_limits),
            cmocka_unit_test(test_pcie_replay),
            cmocka_unit_test(test_memory_rules),
            cmocka_unit_test(test_retired_dbe_rate),
            cmocka_unit_test(test_violations),
            cmocka_unit_test(test_power_capping),
            cmocka_unit_test(test_power_unreadable),
            cmocka_unit_test(test_clock_throttle),
            cmocka_unit_test(test_temperature_hysteresis),
            cmocka_unit_test(test_gpu_temps),
            cmocka_unit_test(test_gpu_state_rules),
            cmocka_unit_test(test_host_rules),
            cmocka_unit_test(test_collection_slow),
            cmocka_unit_test(test_extra_conditions),
            cmocka_unit_test(test_xid_classes),
            cmocka_unit_test(test_payloads),
            cmocka_unit_test(test_incident_store),
            cmocka_unit_test(test_sweep_driven),
            cmocka_unit_test(test_host_os_facts),
            cmocka_unit_test(test_exec_hook),
            cmocka_unit_test(test_diag_action),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
