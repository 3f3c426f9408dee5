/* rules.c — the rule table (rules.def) and its evaluators. Each evaluator reads the cache for one
 * GPU (or the node facts) and says FIRING, CLEAR or SKIP; it keeps no state of its own, so the
 * incident layer (health.c) owns dedupe, hysteresis timers and resolution. Thresholds with a
 * clear level below the open level read ctx->active to pick the one that applies. Limits are
 * DCGM's (common/DcgmGPUHardwareLimits.h, modules/health/DcgmHealthWatch.cpp). */
#include "health-internal.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/macros.h"
#include "health/xid.h"

#define MAX_RETIRED_PAGES    63  /* DCGM_LIMIT_MAX_RETIRED_PAGES */
#define MAX_RETIRED_DBE_SOFT 15  /* DCGM_LIMIT_MAX_RETIRED_PAGES_SOFT_LIMIT */
#define MAX_ROW_REMAP_UNCORR 512 /* DCGM_LIMIT_MAX_ROW_REMAP_UNCORRECTABLE */
#define HISTORY_MAX          512 /* points read for one window */

/* NVML clock event reasons that mean the hardware, not software, held the clocks down. */
#define REASON_HW_SLOWDOWN    0x08ULL
#define REASON_HW_THERMAL     0x40ULL
#define REASON_HW_POWER_BRAKE 0x80ULL
#define REASON_HW_MASK        (REASON_HW_SLOWDOWN | REASON_HW_THERMAL | REASON_HW_POWER_BRAKE)

/* ---- helpers --------------------------------------------------------------------------------- */

static int latest(const rule_ctx *c, uint16_t field, field_value *v)
{
        int r = cache_latest(c->cache, c->gpu, field, v, NULL);

        if (r < 0)
                return r;
        return v->status;
}

static int latest_i64(const rule_ctx *c, uint16_t field, int64_t *out)
{
        field_value v;
        int r = latest(c, field, &v);

        if (r < 0)
                return r;
        *out = v.i;
        return 0;
}

/* Sum of the increases of a counter over the window ending now. A decrease is a reset or a wrap
 * (driver reload, 32-bit counter): it adds nothing, so it can never fire a rule by itself.
 * *npoints = valid points seen. */
static int counter_increase(const rule_ctx *c, uint16_t field, int64_t window_us, int64_t *inc,
                            size_t *npoints)
{
        _cleanup_free_ cache_point *pts = NULL;
        size_t n = 0, valid = 0;
        int64_t sum = 0, prev = 0;
        bool have = false;
        int r;

        counter_memo *m = NULL;
        int64_t latest_ts = 0;
        field_value lv;

        if (c->memo && cache_latest(c->cache, c->gpu, field, &lv, &latest_ts) == 0) {
                for (size_t i = 0; i < RULE_MEMO_SLOTS && !m; i++)
                        if (c->memo[i].field == field && c->memo[i].window_us == window_us)
                                m = &c->memo[i];
                for (size_t i = 0; i < RULE_MEMO_SLOTS && !m; i++)
                        if (c->memo[i].field == 0)
                                m = &c->memo[i];
                if (m && m->field == field && m->latest_ts == latest_ts) {
                        *inc = m->inc;
                        *npoints = m->npoints;
                        return 0;
                }
        }
        pts = malloc(HISTORY_MAX * sizeof(*pts));
        if (!pts)
                return -ENOMEM;
        r = cache_history(c->cache, c->gpu, field, c->now_us - window_us, pts, HISTORY_MAX, &n);
        if (r < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (pts[i].v.status != 0)
                        continue;
                valid++;
                if (have && pts[i].v.i > prev)
                        sum += pts[i].v.i - prev;
                prev = pts[i].v.i;
                have = true;
        }
        *inc = sum;
        *npoints = valid;
        if (m)
                *m = (counter_memo){.field = field,
                                    .window_us = window_us,
                                    .latest_ts = latest_ts,
                                    .inc = sum,
                                    .npoints = valid};
        return 0;
}

static void fire(rule_result *out, enum health_severity sev, const char *fmt, ...) _printf_(3, 4);
static void fire(rule_result *out, enum health_severity sev, const char *fmt, ...)
{
        va_list ap;

        out->state = RULE_FIRING;
        out->sev = sev;
        va_start(ap, fmt);
        vsnprintf(out->detail, sizeof(out->detail), fmt, ap);
        va_end(ap);
}

/* A field that cannot be read says nothing: SKIP (not supported, GPU lost, not sampled yet). */
#define READ_OR_SKIP(expr)                                                                         \
        do {                                                                                       \
                if ((expr) < 0) {                                                                  \
                        out->state = RULE_SKIP;                                                    \
                        return;                                                                    \
                }                                                                                  \
        } while (0)

static bool gpu_readable(const rule_ctx *c)
{
        return c->g && c->g->up && !c->unresponsive;
}

/* ---- evaluators ------------------------------------------------------------------------------ */

static void eval_gpu_lost(const rule_ctx *c, rule_result *out)
{
        if (c->g && !c->g->up)
                fire(out, HEALTH_FAIL, "GPU %u ('%s') lost; not answering for %llds", c->gpu,
                     c->g->id.uuid,
                     (long long)(c->g->lost_since_us ? (c->now_us - c->g->lost_since_us) / 1000000
                                                     : 0));
}

static void eval_gpu_unresponsive(const rule_ctx *c, rule_result *out)
{
        if (c->unresponsive)
                fire(out, HEALTH_FAIL,
                     "an NVML call on GPU %u has been running for more than %llds", c->gpu,
                     (long long)(c->cfg->nvml_call_timeout_us / 1000000));
}

unsigned health_pcie_replay_limit(int gen, int width)
{
        /* Replays per lane per minute: 1e-12 BER × link speed × 60 (DCGM). */
        static const double per_lane[] = {0.15, 0.3, 0.48, 0.96, 1.92, 3.84};

        if (gen < 1)
                gen = 1;
        if (gen > (int)ARRAY_SIZE(per_lane))
                gen = (int)ARRAY_SIZE(per_lane);
        if (width < 1)
                width = 1;
        return (unsigned)ceil(per_lane[gen - 1] * width);
}

static void eval_pcie_replay(const rule_ctx *c, rule_result *out)
{
        int64_t gen, width, inc;
        size_t n;
        unsigned limit;

        if (!gpu_readable(c)) {
                out->state = RULE_SKIP;
                return;
        }
        READ_OR_SKIP(latest_i64(c, FLD_PCIE_LINK_GEN, &gen));
        READ_OR_SKIP(latest_i64(c, FLD_PCIE_LINK_WIDTH, &width));
        READ_OR_SKIP(
            counter_increase(c, FLD_PCIE_REPLAY_COUNTER, HEALTH_COUNTER_WINDOW_US, &inc, &n));
        if (n < 2) {
                out->state = RULE_SKIP;
                return;
        }
        limit = health_pcie_replay_limit((int)gen, (int)width);
        if (inc > (int64_t)limit)
                fire(out, HEALTH_WARN,
                     "%lld PCIe replays in the last minute on a gen %lld x%lld link (limit %u)",
                     (long long)inc, (long long)gen, (long long)width, limit);
}

static void eval_ecc_dbe(const rule_ctx *c, rule_result *out)
{
        int64_t v;

        READ_OR_SKIP(latest_i64(c, FLD_ECC_DBE_VOL_TOTAL, &v));
        if (v > 0)
                fire(out, HEALTH_FAIL, "%lld volatile double-bit ECC errors", (long long)v);
}

static void eval_retired_pending(const rule_ctx *c, rule_result *out)
{
        int64_t v;

        READ_OR_SKIP(latest_i64(c, FLD_RETIRED_PENDING, &v));
        if (v > 0)
                fire(out, HEALTH_WARN, "page retirement pending");
}

static void eval_retired_limit(const rule_ctx *c, rule_result *out)
{
        int64_t sbe, dbe;

        READ_OR_SKIP(latest_i64(c, FLD_RETIRED_SBE, &sbe));
        READ_OR_SKIP(latest_i64(c, FLD_RETIRED_DBE, &dbe));
        if (sbe + dbe >= MAX_RETIRED_PAGES)
                fire(out, HEALTH_FAIL, "%lld pages retired (%lld single-bit, %lld double-bit)",
                     (long long)(sbe + dbe), (long long)sbe, (long long)dbe);
}

static void eval_retired_dbe_rate(const rule_ctx *c, rule_result *out)
{
        int64_t dbe, inc;
        size_t n;

        READ_OR_SKIP(latest_i64(c, FLD_RETIRED_DBE, &dbe));
        if (dbe <= MAX_RETIRED_DBE_SOFT)
                return;
        /* DCGM looks for more than one new DBE page in a week; the cache holds what it keeps
         * (collection.keep.max_age), so this sees the increase within that span. */
        READ_OR_SKIP(counter_increase(c, FLD_RETIRED_DBE, 7 * 86400 * INT64_C(1000000), &inc, &n));
        if (inc > 1)
                fire(out, HEALTH_FAIL, "%lld pages retired for double-bit errors, %lld recently",
                     (long long)dbe, (long long)inc);
}

static void eval_row_remap_failure(const rule_ctx *c, rule_result *out)
{
        int64_t v;

        READ_OR_SKIP(latest_i64(c, FLD_ROW_REMAP_FAILURE, &v));
        if (v)
                fire(out, HEALTH_FAIL, "row remapping failed");
}

static void eval_row_remap_pending(const rule_ctx *c, rule_result *out)
{
        int64_t v;

        READ_OR_SKIP(latest_i64(c, FLD_ROW_REMAP_PENDING, &v));
        if (v)
                fire(out, HEALTH_WARN, "row remapping pending");
}

static void eval_row_remap_uncorr(const rule_ctx *c, rule_result *out)
{
        int64_t v;

        READ_OR_SKIP(latest_i64(c, FLD_UNCORRECTABLE_REMAPPED_ROWS, &v));
        if (v >= MAX_ROW_REMAP_UNCORR)
                fire(out, HEALTH_WARN, "%lld rows remapped for uncorrectable errors (limit %d)",
                     (long long)v, MAX_ROW_REMAP_UNCORR);
}

/* NVLink (DCGM's MonitorNVLink4Fields, pre-Blackwell): over the last minute any replay or recovery
 * error fails, CRC errors (flit + data) at DCGM_LIMIT_MAX_NVLINK_CRC_ERROR per second or more
 * fail, fewer warn. A GPU without NVLink reads "not supported" and is skipped. */
#define MAX_NVLINK_CRC_PER_S 100 /* DCGM_LIMIT_MAX_NVLINK_CRC_ERROR */

static void eval_nvlink_errors(const rule_ctx *c, rule_result *out)
{
        int64_t flit, data, replay, recovery;
        size_t n1, n2, n3, n4;
        double crc_per_s;

        if (!gpu_readable(c)) {
                out->state = RULE_SKIP;
                return;
        }
        READ_OR_SKIP(counter_increase(c, FLD_NVLINK_REPLAY_ERROR_COUNT_TOTAL,
                                      HEALTH_COUNTER_WINDOW_US, &replay, &n1));
        READ_OR_SKIP(counter_increase(c, FLD_NVLINK_RECOVERY_ERROR_COUNT_TOTAL,
                                      HEALTH_COUNTER_WINDOW_US, &recovery, &n2));
        READ_OR_SKIP(counter_increase(c, FLD_NVLINK_CRC_FLIT_ERROR_COUNT_TOTAL,
                                      HEALTH_COUNTER_WINDOW_US, &flit, &n3));
        READ_OR_SKIP(counter_increase(c, FLD_NVLINK_CRC_DATA_ERROR_COUNT_TOTAL,
                                      HEALTH_COUNTER_WINDOW_US, &data, &n4));
        if (n1 < 2 || n2 < 2 || n3 < 2 || n4 < 2) {
                out->state = RULE_SKIP;
                return;
        }
        crc_per_s = (double)(flit + data) / ((double)HEALTH_COUNTER_WINDOW_US / 1e6);
        if (replay > 0 || recovery > 0)
                fire(out, HEALTH_FAIL,
                     "%lld NVLink replay and %lld recovery errors in the last minute",
                     (long long)replay, (long long)recovery);
        else if (crc_per_s >= MAX_NVLINK_CRC_PER_S)
                fire(out, HEALTH_FAIL,
                     "NVLink CRC errors at %.1f/s over the last minute (limit %d/s)", crc_per_s,
                     MAX_NVLINK_CRC_PER_S);
        else if (flit + data > 0)
                fire(out, HEALTH_WARN,
                     "%lld NVLink CRC errors (%lld flit, %lld data) in the last minute",
                     (long long)(flit + data), (long long)flit, (long long)data);
}

/* DCGM's MonitorNVLinkStatus: a link the GPU has that reports down fails; absent links (not
 * supported) are not counted. Unlike DCGM, a GPU with every link down and none up is NVLink not in
 * use (a single SXM GPU passed through to a VM, a board without its NVSwitch tray): the links are
 * reported down in the API and metrics, but that is not an incident. */
static void eval_nvlink_down(const rule_ctx *c, rule_result *out)
{
        int64_t down, up;

        if (!gpu_readable(c)) {
                out->state = RULE_SKIP;
                return;
        }
        READ_OR_SKIP(latest_i64(c, FLD_NVLINK_LINKS_DOWN, &down));
        READ_OR_SKIP(latest_i64(c, FLD_NVLINK_LINKS_UP, &up));
        if (down > 0 && up > 0)
                fire(out, HEALTH_FAIL, "%lld of %lld NVLinks are down", (long long)down,
                     (long long)(down + up));
}

static void violation(const rule_ctx *c, rule_result *out, uint16_t field, const char *what)
{
        int64_t inc;
        size_t n;

        if (!gpu_readable(c)) {
                out->state = RULE_SKIP;
                return;
        }
        READ_OR_SKIP(counter_increase(c, field, HEALTH_COUNTER_WINDOW_US, &inc, &n));
        if (n < 2) {
                out->state = RULE_SKIP;
                return;
        }
        if (inc > 0)
                fire(out, HEALTH_WARN, "clocks held down by %s for %.3fs in the last minute", what,
                     (double)inc / 1e9);
}

static void eval_thermal_violation(const rule_ctx *c, rule_result *out)
{
        violation(c, out, FLD_THERMAL_VIOLATION, "thermal limits");
}

static void eval_power_violation(const rule_ctx *c, rule_result *out)
{
        violation(c, out, FLD_POWER_VIOLATION, "the power limit");
}

static void eval_power_unreadable(const rule_ctx *c, rule_result *out)
{
        field_value v;
        int r;

        if (!gpu_readable(c)) {
                out->state = RULE_SKIP;
                return;
        }
        r = cache_latest(c->cache, c->gpu, FLD_POWER_USAGE, &v, NULL);
        if (r < 0 || v.status == -EOPNOTSUPP || v.status == -ENODATA || v.status == -ENODEV) {
                out->state = r < 0 || v.status == -EOPNOTSUPP ? RULE_CLEAR : RULE_SKIP;
                return;
        }
        if (v.status != 0)
                fire(out, HEALTH_WARN, "reading board power failed: %s", strerror(-v.status));
}

static void eval_clock_throttle(const rule_ctx *c, rule_result *out)
{
        _cleanup_free_ cache_point *pts = calloc(HISTORY_MAX, sizeof(*pts));
        int64_t sustain = c->cfg->throttle_sustain_us, oldest = 0;
        uint64_t all = REASON_HW_MASK, last = 0;
        size_t n = 0, valid = 0;

        if (!pts || !gpu_readable(c)) {
                out->state = RULE_SKIP;
                return;
        }
        READ_OR_SKIP(cache_history(c->cache, c->gpu, FLD_CLOCKS_EVENT_REASONS, c->now_us - sustain,
                                   pts, HISTORY_MAX, &n));
        for (size_t i = 0; i < n; i++) {
                if (pts[i].v.status != 0)
                        continue;
                if (!valid)
                        oldest = pts[i].ts_us;
                valid++;
                last = (uint64_t)pts[i].v.i;
                all &= (uint64_t)pts[i].v.i;
        }
        if (valid == 0) {
                out->state = RULE_SKIP;
                return;
        }
        if (c->active) {
                /* Open: holds while the latest sample still has a hardware reason. */
                if (last & REASON_HW_MASK)
                        fire(out, HEALTH_WARN, "hardware clock slowdown (reasons 0x%llx)",
                             (unsigned long long)last);
                return;
        }
        /* Opens only when every sample of a window that covers (most of) sustain has one. */
        if (valid >= 2 && (all & REASON_HW_MASK) && c->now_us - oldest >= sustain * 3 / 4)
                fire(out, HEALTH_WARN, "hardware clock slowdown for %llds (reasons 0x%llx)",
                     (long long)((c->now_us - oldest) / 1000000), (unsigned long long)last);
}

static void eval_temperature(const rule_ctx *c, rule_result *out)
{
        int64_t t, warn = c->cfg->temp_warning, crit = c->cfg->temp_critical;
        int64_t hyst = c->active ? c->cfg->temp_hysteresis : 0;

        READ_OR_SKIP(latest_i64(c, FLD_GPU_TEMP, &t));
        /* Opens at the threshold, clears only below threshold - hysteresis. */
        if (t >= warn - hyst)
                fire(out, t >= crit ? HEALTH_FAIL : HEALTH_WARN,
                     "GPU temperature %lld C (warning %lld C, critical %lld C)", (long long)t,
                     (long long)warn, (long long)crit);
}

static void eval_temp_slowdown(const rule_ctx *c, rule_result *out)
{
        int64_t t, slow, hyst = c->active ? c->cfg->temp_hysteresis : 0;

        READ_OR_SKIP(latest_i64(c, FLD_GPU_TEMP, &t));
        READ_OR_SKIP(latest_i64(c, FLD_SLOWDOWN_TEMP, &slow));
        if (slow > 0 && t >= slow - hyst)
                fire(out, HEALTH_WARN, "GPU temperature %lld C, slowdown at %lld C", (long long)t,
                     (long long)slow);
}

static void eval_temp_shutdown(const rule_ctx *c, rule_result *out)
{
        int64_t t, shut, margin = c->cfg->temp_hysteresis;
        int64_t hyst = c->active ? c->cfg->temp_hysteresis : 0;

        READ_OR_SKIP(latest_i64(c, FLD_GPU_TEMP, &t));
        READ_OR_SKIP(latest_i64(c, FLD_SHUTDOWN_TEMP, &shut));
        if (shut > 0 && t >= shut - margin - hyst)
                fire(out, HEALTH_FAIL, "GPU temperature %lld C, shutdown at %lld C", (long long)t,
                     (long long)shut);
}

static void eval_gpu_count(const rule_ctx *c, rule_result *out)
{
        if (c->cfg->expected_gpus && c->host->gpu_count < c->cfg->expected_gpus)
                fire(out, HEALTH_FAIL, "%u GPUs visible, %u expected", c->host->gpu_count,
                     c->cfg->expected_gpus);
}

static void eval_disk_usage(const rule_ctx *c, rule_result *out)
{
        int pct = c->host->disk_pct, hyst = c->active ? 1 : 0;

        if (pct < 0) {
                out->state = RULE_SKIP;
                return;
        }
        if (pct >= (int)c->cfg->disk_critical)
                fire(out, HEALTH_FAIL, "data directory filesystem %d%% full (critical at %u%%)",
                     pct, c->cfg->disk_critical);
        else if (pct >= (int)c->cfg->disk_warning - hyst)
                fire(out, HEALTH_WARN, "data directory filesystem %d%% full (warning at %u%%)", pct,
                     c->cfg->disk_warning);
}

static void eval_daemon_memory(const rule_ctx *c, rule_result *out)
{
        uint64_t max = c->cfg->max_rss_bytes, rss = c->host->rss_bytes;

        if (!max || !rss) {
                out->state = max ? RULE_SKIP : RULE_CLEAR;
                return;
        }
        /* Clears only below 90 % of the limit, so a daemon hovering at it does not flap. */
        if (rss > (c->active ? max / 10 * 9 : max))
                fire(out, HEALTH_WARN, "resident memory %.1f MiB, limit %.1f MiB",
                     (double)rss / 1048576.0, (double)max / 1048576.0);
}

/* A tier the adaptive collection keeps stretched for long means NVML (or the node) is slow: the
 * readings are coarser than configured. Clears as soon as every tier is back to its interval. */
static void eval_collection_slow(const rule_ctx *c, rule_result *out)
{
        int64_t after = c->cfg->collection_stretched_after_us;

        out->state = RULE_CLEAR;
        if (after <= 0)
                return;
        for (int t = TIER_FAST; t <= TIER_SLOW; t++) {
                int64_t since = c->host->stretched_since_us[t];
                if (since && (c->active || c->now_us - since >= after)) {
                        fire(out, HEALTH_WARN,
                             "the %s tier has run slower than its configured interval for %llds",
                             t == TIER_FAST ? "fast" : "slow",
                             (long long)((c->now_us - since) / 1000000));
                        return;
                }
        }
}

/* ---- the table ------------------------------------------------------------------------------- */

const health_rule health_rules[] = {
#define RULE(name, scope, sys, sev, code, fn, summary, action)                                     \
        {#name, RULE_SCOPE_##scope, HEALTH_SYS_##sys, HEALTH_##sev, code, fn, summary, action},
#include "rules.def"
#undef RULE
};
const size_t health_n_rules = ARRAY_SIZE(health_rules);

int health_rule_find(const char *name)
{
        for (size_t i = 0; i < health_n_rules; i++)
                if (!strcmp(health_rules[i].name, name))
                        return (int)i;
        return -1;
}

void health_rule_eval(size_t rule, const rule_ctx *c, rule_result *out)
{
        memset(out, 0, sizeof(*out));
        out->state = RULE_CLEAR;
        if (rule < health_n_rules)
                health_rules[rule].eval(c, out);
}

enum health_system health_xid_system(uint32_t code)
{
        /* DCGM's BuildXidMappings (dcgm-compat.md §2.3). */
        switch (code) {
        case 38:
        case 39:
        case 42:
                return HEALTH_SYS_PCIE;
        case 67:
        case 73:
        case 74:
        case 121:
        case 137:
        case 144 ... 150:
                return HEALTH_SYS_NVLINK;
        case 31:
        case 32:
        case 43:
        case 48:
        case 63:
        case 64:
        case 92:
        case 94:
        case 95:
        case 140:
                return HEALTH_SYS_MEMORY;
        case 93:
                return HEALTH_SYS_INFOROM;
        case 60:
        case 61:
        case 62:
                return HEALTH_SYS_THERMAL;
        case 54:
        case 56:
        case 57:
        case 58:
        case 78:
                return HEALTH_SYS_POWER;
        case 154:
                return HEALTH_SYS_DRIVER;
        default:
                return HEALTH_SYS_GPU;
        }
}
