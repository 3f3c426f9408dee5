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
#include <time.h>

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
#define REASON_SW_POWER_CAP   0x04ULL

/* Power capping: a capped sample drawing at least this share of the enforced limit is "at the
 * limit" (1 s averages of a capped GPU sit at 90-99 % of it; the recorded H200 trace: 630-693 W
 * of 700 W). */
#define POWER_AT_LIMIT_SHARE 0.85
#define POWER_LIMIT_SLACK_W  1.0 /* W an enforced limit may sit below the default by rounding */

/* ---- helpers --------------------------------------------------------------------------------- */

/* -ESTALE when the latest reading of field is stale (sampler_latest: the one definition), else
 * 0: a rule judges current readings only, and keeps its state on a stale one. */
static int stale(const rule_ctx *c, uint16_t field)
{
        sampler_reading rd;

        if (!c->sampler || sampler_latest(c->sampler, c->gpu, field, c->now_us, &rd) < 0)
                return 0;
        return rd.v.status == 0 && rd.fresh != SAMPLER_FRESH ? -ESTALE : 0;
}

static int latest(const rule_ctx *c, uint16_t field, field_value *v)
{
        sampler_reading rd;
        int r;

        /* One read for value and freshness; without a sampler's answer, as stale() judges it. */
        if (c->sampler && sampler_latest(c->sampler, c->gpu, field, c->now_us, &rd) == 0) {
                *v = rd.v;
                if (v->status == 0 && rd.fresh != SAMPLER_FRESH)
                        return -ESTALE;
                return v->status;
        }
        r = cache_latest(c->cache, c->gpu, field, v, NULL);
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

        r = stale(c, field);
        if (r < 0)
                return r;

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

/* nvmlDeviceGpuRecoveryAction_t (NVML_FI_DEV_GET_GPU_RECOVERY_ACTION), as the field stores it. */
enum {
        NVML_RECOVERY_GPU_RESET = 1,
        NVML_RECOVERY_NODE_REBOOT = 2,
        NVML_RECOVERY_DRAIN_P2P = 3,
        NVML_RECOVERY_DRAIN_AND_RESET = 4,
};

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

/* The recovery action the driver reports: each rule fires on its own value (rules.def). */
static void recovery_is(const rule_ctx *c, rule_result *out, int64_t want, const char *what)
{
        int64_t v;

        READ_OR_SKIP(latest_i64(c, FLD_GPU_RECOVERY_ACTION, &v));
        if (v == want)
                fire(out, out->sev, "the driver's recovery action is %s (%lld)", what,
                     (long long)v);
}

static void eval_recovery_reset(const rule_ctx *c, rule_result *out)
{
        out->sev = HEALTH_FAIL;
        recovery_is(c, out, NVML_RECOVERY_GPU_RESET, "GPU reset");
}

static void eval_recovery_reboot(const rule_ctx *c, rule_result *out)
{
        out->sev = HEALTH_FAIL;
        recovery_is(c, out, NVML_RECOVERY_NODE_REBOOT, "node reboot");
}

static void eval_recovery_drain_p2p(const rule_ctx *c, rule_result *out)
{
        out->sev = HEALTH_WARN;
        recovery_is(c, out, NVML_RECOVERY_DRAIN_P2P, "drain peer-to-peer traffic");
}

static void eval_recovery_drain_reset(const rule_ctx *c, rule_result *out)
{
        out->sev = HEALTH_FAIL;
        recovery_is(c, out, NVML_RECOVERY_DRAIN_AND_RESET, "drain and reset");
}

static void eval_inforom_corrupt(const rule_ctx *c, rule_result *out)
{
        int64_t v;

        READ_OR_SKIP(latest_i64(c, FLD_INFOROM_VALID, &v));
        if (v == 0)
                fire(out, HEALTH_WARN, "nvmlDeviceValidateInforom: corrupted InfoROM");
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

static bool latest_f64(const rule_ctx *c, uint16_t field, double *out)
{
        field_value v;

        if (latest(c, field, &v) < 0)
                return false;
        *out = v.d;
        return true;
}

/* Was the GPU capped for at least 80 % of the last sustain (violation counter, slow tier)? */
static bool power_capped_sustained(const rule_ctx *c, int64_t sustain, int64_t *capped_us)
{
        _cleanup_free_ cache_point *pts = calloc(HISTORY_MAX, sizeof(*pts));
        int64_t first = 0, last = 0, prev = 0, inc = 0;
        bool have = false;
        size_t n = 0;

        if (!pts || sustain <= 0 ||
            cache_history(c->cache, c->gpu, FLD_POWER_VIOLATION, c->now_us - sustain, pts,
                          HISTORY_MAX, &n) < 0)
                return false;
        for (size_t i = 0; i < n; i++) {
                if (pts[i].v.status != 0)
                        continue;
                if (!have)
                        first = pts[i].ts_us;
                else if (pts[i].v.i > prev)
                        inc += pts[i].v.i - prev;
                prev = pts[i].v.i;
                last = pts[i].ts_us;
                have = true;
        }
        *capped_us = inc / 1000;
        return have && last - first >= sustain * 3 / 4 && inc / 1000 >= (last - first) * 4 / 5;
}

/* Why capping seen in the last window is not what a GPU working at its own limit does, into why
 * (empty: expected). Unexpected: an enforced limit below the default limit; a HW slowdown or
 * power brake; capped samples mostly drawing well below the limit; capped past
 * health.power.sustain. */
static void power_capping_unexpected(const rule_ctx *c, char *why, size_t whylen)
{
        _cleanup_free_ cache_point *rs = calloc(HISTORY_MAX, sizeof(*rs));
        _cleanup_free_ cache_point *ps = calloc(HISTORY_MAX, sizeof(*ps));
        double enforced = 0, def = 0;
        bool have_limit = latest_f64(c, FLD_ENFORCED_POWER_LIMIT, &enforced) && enforced > 0;
        size_t nr = 0, np = 0, capped = 0, at = 0, k = 0;
        uint64_t hw = 0;
        int64_t capped_us = 0;

        why[0] = '\0';
        if (have_limit && latest_f64(c, FLD_POWER_LIMIT_DEFAULT, &def) &&
            enforced + POWER_LIMIT_SLACK_W < def) {
                snprintf(why, whylen, "the enforced limit (%.0f W) is below the default (%.0f W)",
                         enforced, def);
                return;
        }
        if (rs && ps &&
            cache_history(c->cache, c->gpu, FLD_CLOCKS_EVENT_REASONS,
                          c->now_us - HEALTH_COUNTER_WINDOW_US, rs, HISTORY_MAX, &nr) == 0) {
                if (cache_history(c->cache, c->gpu, FLD_POWER_USAGE,
                                  c->now_us - HEALTH_COUNTER_WINDOW_US, ps, HISTORY_MAX, &np) < 0)
                        np = 0;
                for (size_t i = 0; i < nr; i++) {
                        uint64_t v = (uint64_t)rs[i].v.i;
                        if (rs[i].v.status != 0)
                                continue;
                        hw |= v & (REASON_HW_SLOWDOWN | REASON_HW_POWER_BRAKE);
                        if (!(v & REASON_SW_POWER_CAP) || !have_limit)
                                continue;
                        /* samples of one sweep share a timestamp: the power drawn meanwhile */
                        while (k < np && ps[k].ts_us < rs[i].ts_us)
                                k++;
                        if (k < np && ps[k].ts_us == rs[i].ts_us && ps[k].v.status == 0) {
                                capped++;
                                at += ps[k].v.d >= enforced * POWER_AT_LIMIT_SHARE;
                        }
                }
        }
        if (hw) {
                snprintf(why, whylen, "with %s",
                         hw & REASON_HW_POWER_BRAKE ? "the HW power brake" : "HW slowdown");
                return;
        }
        if (capped >= 3 && at * 2 < capped) {
                snprintf(why, whylen, "while drawing under %.0f%% of the %.0f W limit",
                         POWER_AT_LIMIT_SHARE * 100, enforced);
                return;
        }
        if (power_capped_sustained(c, c->cfg->power_sustain_us, &capped_us))
                snprintf(why, whylen, "at the power limit for %llds of the last %llds",
                         (long long)(capped_us / 1000000),
                         (long long)(c->cfg->power_sustain_us / 1000000));
}

/* DCGM's POWER watch: the violation counter rose in the window -> WARN. A GPU held at its own
 * limit by a full workload is working as designed: that is RULE_NOTED (DCGM's system result WARN,
 * the counters and reasons in /metrics) and no incident; only unexpected capping fires. An open
 * incident holds while the capping lasts, so it does not flap. */
static void eval_power_violation(const rule_ctx *c, rule_result *out)
{
        char why[96];
        size_t len;

        violation(c, out, FLD_POWER_VIOLATION, "the power limit");
        if (out->state != RULE_FIRING)
                return;
        power_capping_unexpected(c, why, sizeof(why));
        if (!why[0]) {
                if (!c->active)
                        out->state = RULE_NOTED;
                return;
        }
        len = strlen(out->detail);
        snprintf(out->detail + len, sizeof(out->detail) - len, " %s", why);
}

static void eval_power_unreadable(const rule_ctx *c, rule_result *out)
{
        field_value v;
        int r;

        if (!gpu_readable(c)) {
                out->state = RULE_SKIP;
                return;
        }
        READ_OR_SKIP(stale(c, FLD_POWER_USAGE));
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
        _cleanup_free_ cache_point *pts = NULL;
        int64_t sustain = c->cfg->throttle_sustain_us, oldest = 0, latest_ts = 0;
        uint64_t all = REASON_HW_MASK, last = 0;
        size_t n = 0, valid = 0;
        field_value lv;

        if (!gpu_readable(c)) {
                out->state = RULE_SKIP;
                return;
        }
        READ_OR_SKIP(stale(c, FLD_CLOCKS_EVENT_REASONS));
        /* The common case without decoding the window: a current latest sample inside the window
         * with no hardware reason is the window's last valid point, so neither an open incident
         * holds (it looks at that point) nor a new one opens (every point must have one). */
        if (cache_latest(c->cache, c->gpu, FLD_CLOCKS_EVENT_REASONS, &lv, &latest_ts) == 0 &&
            lv.status == 0 && latest_ts >= c->now_us - sustain &&
            !((uint64_t)lv.i & REASON_HW_MASK))
                return;
        pts = calloc(HISTORY_MAX, sizeof(*pts));
        if (!pts) {
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

/* When the host's OS facts were read (every HOST_OS_FACTS_US, not at each evaluation), for the
 * incident text: "read 2026-12-06T17:20:01Z". */
static void os_read_at(const rule_ctx *c, char *b, size_t len)
{
        time_t t = (time_t)(c->host->os_read_us / 1000000);
        struct tm tm;

        if (!c->host->os_read_us || !gmtime_r(&t, &tm) ||
            !strftime(b, len, "read %Y-%m-%dT%H:%M:%SZ", &tm))
                snprintf(b, len, "read time unknown");
}

static void eval_disk_usage(const rule_ctx *c, rule_result *out)
{
        int pct = c->host->disk_pct, hyst = c->active ? 1 : 0;
        char at[48];

        if (pct < 0) {
                out->state = RULE_SKIP;
                return;
        }
        os_read_at(c, at, sizeof(at));
        if (pct >= (int)c->cfg->disk_critical)
                fire(out, HEALTH_FAIL, "data directory filesystem %d%% full (critical at %u%%; %s)",
                     pct, c->cfg->disk_critical, at);
        else if (pct >= (int)c->cfg->disk_warning - hyst)
                fire(out, HEALTH_WARN, "data directory filesystem %d%% full (warning at %u%%; %s)",
                     pct, c->cfg->disk_warning, at);
}

static void eval_daemon_memory(const rule_ctx *c, rule_result *out)
{
        uint64_t max = c->cfg->max_rss_bytes, rss = c->host->rss_bytes;

        if (!max || !rss) {
                out->state = max ? RULE_SKIP : RULE_CLEAR;
                return;
        }
        /* Clears only below 90 % of the limit, so a daemon hovering at it does not flap. */
        if (rss > (c->active ? max / 10 * 9 : max)) {
                char at[48];
                os_read_at(c, at, sizeof(at));
                fire(out, HEALTH_WARN, "resident memory %.1f MiB, limit %.1f MiB (%s)",
                     (double)rss / 1048576.0, (double)max / 1048576.0, at);
        }
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
#define NEEDS(...)                                                                                 \
        {                                                                                          \
                __VA_ARGS__                                                                        \
        }
#define RULE(name, scope, sys, sev, code, fn, summary, action, needs)                              \
        {#name,  RULE_SCOPE_##scope, HEALTH_SYS_##sys, HEALTH_##sev, code, fn, summary,            \
         action, NEEDS needs},
#include "rules.def"
#undef RULE
#undef NEEDS
};
const size_t health_n_rules = ARRAY_SIZE(health_rules);

bool health_rule_monitors(size_t rule, cache *ca, unsigned gpu)
{
        if (rule >= health_n_rules)
                return false;
        for (size_t k = 0; k < RULE_MAX_NEEDS && health_rules[rule].needs[k]; k++) {
                field_value v;
                if (cache_latest(ca, gpu, health_rules[rule].needs[k], &v, NULL) < 0 ||
                    v.status == -EOPNOTSUPP || v.status == -EACCES)
                        return false;
        }
        return true;
}

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
