/* scenario.c — the scenario file of the fake NVML: YAML (libyaml's document API, so every error
 * can name the line of the node it is about) into a struct fake_scenario with every default
 * filled in. Keys are tables; unknown keys and bad values are refused as "FILE:LINE: reason".
 * The format is documented for users in docs/simulation.md. This file does not run anything: the
 * engine (engine.c) turns a scenario into a running world. */
#include "fakenvml/fake-internal.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>

#include "common/fileio.h"
#include "common/macros.h"
#include "common/yamldoc.h"
#include "fields/fields.h"

/* ---- NVML call names (one slot per nvml_syms.h line) ---- */

static const char *const call_names[FAKE_CALL_COUNT][4] = {
#define NVML_FN(ret, member, req, params, ...) [FAKE_CALL_##member] = {__VA_ARGS__},
#include "nvml/nvml_syms.h"
#undef NVML_FN
};

static const char *const all_names[] = {
#define NVML_FN(ret, member, req, params, ...) __VA_ARGS__,
#include "nvml/nvml_syms.h"
#undef NVML_FN
    NULL,
};

int fake_call_from_name(const char *name)
{
        for (int c = 0; c < FAKE_CALL_COUNT; c++)
                for (int i = 0; i < 4 && call_names[c][i]; i++)
                        if (strcmp(call_names[c][i], name) == 0)
                                return c;
        return -1;
}

const char *fake_call_name(enum fake_call c)
{
        return (unsigned)c < FAKE_CALL_COUNT ? call_names[c][0] : "?";
}

const char *const *fake_call_all_names(void)
{
        return all_names;
}

/* ---- built-in identity and defaults (a plausible H200 SXM on an HGX board) ---- */

/* PCI buses of the eight GPUs of an HGX H100/H200 baseboard; later GPUs count on from 0xe0. */
static const unsigned hgx_buses[] = {0x18, 0x2a, 0x3a, 0x5d, 0x9a, 0xab, 0xba, 0xdb};

#define H200_PCI_DEVICE_ID 0x233510deU /* device 0x2335 (H200 SXM), vendor 0x10de */
#define H200_PCI_SUBSYS_ID 0x18be10deU

/* Values a GPU reports for fields that no source, trace or injection sets (DCGM units). Fields
 * absent here read 0. */
static const struct {
        unsigned field;         /* FLD_* */
        struct fake_source src; /* usually a constant */
} defaults[] = {
    {FLD_FB_TOTAL, {SRC_CONST, 143771, 0, 0, 0}},
    {FLD_FB_RESERVED, {SRC_CONST, 568, 0, 0, 0}},
    {FLD_SLOWDOWN_TEMP, {SRC_CONST, 89, 0, 0, 0}},
    {FLD_SHUTDOWN_TEMP, {SRC_CONST, 92, 0, 0, 0}},
    {FLD_POWER_LIMIT_DEFAULT, {SRC_CONST, 700, 0, 0, 0}},
    {FLD_POWER_LIMIT, {SRC_CONST, 700, 0, 0, 0}},
    {FLD_ENFORCED_POWER_LIMIT, {SRC_CONST, 700, 0, 0, 0}},
    {FLD_PCIE_MAX_LINK_GEN, {SRC_CONST, 5, 0, 0, 0}},
    {FLD_PCIE_MAX_LINK_WIDTH, {SRC_CONST, 16, 0, 0, 0}},
    {FLD_PCIE_LINK_GEN, {SRC_CONST, 5, 0, 0, 0}},
    {FLD_PCIE_LINK_WIDTH, {SRC_CONST, 16, 0, 0, 0}},
    {FLD_SM_CLOCK, {SRC_CONST, 1980, 0, 0, 0}},
    {FLD_MEM_CLOCK, {SRC_CONST, 3201, 0, 0, 0}},
    {FLD_GPU_TEMP, {SRC_CONST, 33, 0, 0, 0}},
    {FLD_MEMORY_TEMP, {SRC_CONST, 38, 0, 0, 0}},
    {FLD_POWER_USAGE, {SRC_CONST, 76, 0, 0, 0}},
    {FLD_POWER_USAGE_INSTANT, {SRC_CONST, 76, 0, 0, 0}},
    {FLD_TOTAL_ENERGY_CONSUMPTION, {SRC_RATE, 0, 76000, 0, 0}}, /* 76 W idle */
    {FLD_PERSISTENCE_MODE, {SRC_CONST, 1, 0, 0, 0}},
    {FLD_APP_SM_CLOCK, {SRC_CONST, 1980, 0, 0, 0}},
    {FLD_APP_MEM_CLOCK, {SRC_CONST, 3201, 0, 0, 0}},
    {FLD_ECC_CURRENT, {SRC_CONST, 1, 0, 0, 0}},
    {FLD_INFOROM_VALID, {SRC_CONST, 1, 0, 0, 0}},
    {FLD_FABRIC_MANAGER_STATUS, {SRC_CONST, 3, 0, 0, 0}}, /* registered (NVSwitch boards) */
    {FLD_PSTATE, {SRC_CONST, 0, 0, 0, 0}},
};

static void gpu_defaults(struct fake_gpu_conf *g, unsigned i, const char *model)
{
        uint64_t h = 0x5a17c0de00000000ULL ^ ((uint64_t)i * 0x9e3779b97f4a7c15ULL);

        memset(g, 0, sizeof(*g));
        snprintf(g->name, sizeof(g->name), "%s", model);
        /* Deterministic, unique per index, shaped like NVIDIA's: GPU-8-4-4-4-12 hex digits. */
        h ^= h >> 29;
        h *= 0xbf58476d1ce4e5b9ULL;
        snprintf(g->uuid, sizeof(g->uuid), "GPU-%08x-%04x-%04x-%04x-%012llx", 0xf4ce0000U + i,
                 (unsigned)(h >> 48), (unsigned)((h >> 32) & 0xffff) | 0x4000,
                 0x8000U | (unsigned)((h >> 16) & 0x3fff),
                 (unsigned long long)(h & 0xffffffffffffULL));
        snprintf(g->serial, sizeof(g->serial), "165422400%04u", i);
        g->pci_domain = 0;
        g->pci_bus = i < ARRAY_SIZE(hgx_buses) ? hgx_buses[i] : (0xe0 + i) & 0xff;
        g->pci_device = 0;
        snprintf(g->bus_id, sizeof(g->bus_id), "%08X:%02X:%02X.0", g->pci_domain, g->pci_bus,
                 g->pci_device);
        g->pci_device_id = H200_PCI_DEVICE_ID;
        g->pci_subsystem_id = H200_PCI_SUBSYS_ID;
        snprintf(g->vbios, sizeof(g->vbios), "96.00.A5.00.01");
        snprintf(g->inforom, sizeof(g->inforom), "G525.0210.00.05");
        g->numa_node = -1; /* spread by topology.numa_nodes */
}

void fake_default_source(unsigned gpu, unsigned field, struct fake_source *out)
{
        *out = (struct fake_source){.kind = SRC_CONST};
        if (field == FLD_MINOR_NUMBER) {
                out->v0 = gpu;
                return;
        }
        for (size_t i = 0; i < ARRAY_SIZE(defaults); i++)
                if (defaults[i].field == field) {
                        *out = defaults[i].src;
                        return;
                }
}

/* ---- parsing ---- */

struct pctx {
        ydoc yd;              /* the document, the file name and err for messages */
        const char *name;     /* file name for errors */
        const char *base_dir; /* for relative trace paths */
        char *err;
        size_t errlen;
        struct fake_scenario *sc;
};

/* "FILE:LINE: message" into err, returning e (common/yamldoc.h). */
#define failf(p, n, e, ...) ydoc_fail(&(p)->yd, (n), (e), __VA_ARGS__)

static yaml_node_t *node(struct pctx *p, yaml_node_item_t i)
{
        return ydoc_node(&p->yd, i);
}

static const char *scalar(const yaml_node_t *n)
{
        return ydoc_scalar(n);
}

static int want_scalar(struct pctx *p, const yaml_node_t *n, const char *what, const char **ret)
{
        const char *s = scalar(n);

        if (!s)
                return failf(p, n, -EINVAL, "%s must be a scalar", what);
        *ret = s;
        return 0;
}

static int get_double(struct pctx *p, const yaml_node_t *n, const char *what, double *ret)
{
        const char *s = NULL;
        char *end;
        double v;
        int r = want_scalar(p, n, what, &s);

        if (r < 0)
                return r;
        errno = 0;
        v = strtod(s, &end);
        if (!*s || *end || errno || !isfinite(v))
                return failf(p, n, -EINVAL, "%s: '%.64s' is not a finite number", what, s);
        *ret = v;
        return 0;
}

static int get_uint(struct pctx *p, const yaml_node_t *n, const char *what, unsigned long long max,
                    unsigned long long *ret)
{
        const char *s = NULL;
        char *end;
        unsigned long long v;
        int r = want_scalar(p, n, what, &s);

        if (r < 0)
                return r;
        errno = 0;
        v = strtoull(s, &end, 0);
        if (!*s || *end || errno || *s == '-' || v > max)
                return failf(p, n, -EINVAL, "%s: '%.64s' is not an integer in 0..%llu", what, s,
                             max);
        *ret = v;
        return 0;
}

static int get_bool(struct pctx *p, const yaml_node_t *n, const char *what, bool *ret)
{
        static const char *const yes[] = {"true", "yes", "on", "1"};
        static const char *const no[] = {"false", "no", "off", "0"};
        const char *s = NULL;
        int r = want_scalar(p, n, what, &s);

        if (r < 0)
                return r;
        for (size_t i = 0; i < ARRAY_SIZE(yes); i++) {
                if (strcasecmp(s, yes[i]) == 0) {
                        *ret = true;
                        return 0;
                }
                if (strcasecmp(s, no[i]) == 0) {
                        *ret = false;
                        return 0;
                }
        }
        return failf(p, n, -EINVAL, "%s: '%.64s' is not a boolean", what, s);
}

int fake_parse_duration_ns(const char *s, int64_t *ret_ns)
{
        static const struct {
                const char *suffix;
                double ns;
        } units[] = {{"ns", 1}, {"us", 1e3}, {"ms", 1e6}, {"s", 1e9}, {"m", 60e9}, {"h", 3600e9}};
        char *end;
        double v, mult = -1;

        if (!s || !*s || (*s != '.' && (*s < '0' || *s > '9')))
                return -EINVAL;
        errno = 0;
        v = strtod(s, &end);
        if (errno || !isfinite(v) || v < 0)
                return -EINVAL;
        if (!*end)
                mult = 1e9;
        for (size_t i = 0; i < ARRAY_SIZE(units) && mult < 0; i++)
                if (strcmp(end, units[i].suffix) == 0)
                        mult = units[i].ns;
        if (mult < 0)
                return -EINVAL;
        if (v * mult > 9.2e18)
                return -ERANGE;
        *ret_ns = (int64_t)llround(v * mult);
        return 0;
}

static int get_duration_ns(struct pctx *p, const yaml_node_t *n, const char *what, int64_t *ret)
{
        const char *s = NULL;
        int r = want_scalar(p, n, what, &s);

        if (r < 0)
                return r;
        r = fake_parse_duration_ns(s, ret);
        if (r < 0)
                return failf(p, n, r,
                             "%s: '%.64s' is not a duration (e.g. 250ms, 3.5ms, 700us, 2s, 1m)",
                             what, s);
        return 0;
}

static int get_duration_us(struct pctx *p, const yaml_node_t *n, const char *what, int64_t *ret)
{
        int64_t ns;
        int r = get_duration_ns(p, n, what, &ns);

        if (r < 0)
                return r;
        *ret = ns / 1000;
        return 0;
}

static int get_string(struct pctx *p, const yaml_node_t *n, const char *what, char *buf,
                      size_t size)
{
        const char *s = NULL;
        int r = want_scalar(p, n, what, &s);

        if (r < 0)
                return r;
        if (strlen(s) >= size)
                return failf(p, n, -EINVAL, "%s: longer than %zu characters", what, size - 1);
        snprintf(buf, size, "%s", s);
        return 0;
}

static int want_mapping(struct pctx *p, const yaml_node_t *n, const char *what)
{
        if (!n || n->type != YAML_MAPPING_NODE)
                return failf(p, n, -EINVAL, "%s must be a mapping", what);
        return 0;
}

/* Iterate a mapping's pairs with key/value nodes. */
#define FOR_PAIRS(p, n, k, v) YDOC_FOR_PAIRS(&(p)->yd, n, k, v)

/* Look up a key among names; refuses unknown and duplicate keys. */
static int key_index(struct pctx *p, const yaml_node_t *k, const char *const *names, size_t n,
                     const yaml_node_t **seen, const char *where)
{
        const char *s = scalar(k);

        if (!s)
                return failf(p, k, -EINVAL, "%s: keys must be scalars", where);
        for (size_t i = 0; i < n; i++)
                if (strcmp(s, names[i]) == 0) {
                        if (seen[i])
                                return failf(p, k, -EINVAL, "%s: duplicate key '%s'", where, s);
                        seen[i] = k;
                        return (int)i;
                }
        return failf(p, k, -EINVAL, "%s: unknown key '%.64s'", where, s);
}

static int field_slot(struct pctx *p, const yaml_node_t *k, unsigned *id, int *idx)
{
        const char *s = scalar(k);
        const field_meta *f = s ? field_by_name(s) : NULL;

        if (!f)
                return failf(p, k, -EINVAL, "unknown field '%.64s'", s ? s : "(non-scalar)");
        *id = f->id;
        *idx = field_index(f->id);
        if (*idx < 0 || *idx >= FAKE_FIELDS_MAX)
                return failf(p, k, -EINVAL, "field '%s' is beyond the fake's table", f->sym);
        return 0;
}

/* SOURCE := number | {constant: N} | {ramp: {from, to, over}} | {noise: {mean, stddev, seed,
 * period}} | {step: {before, after, at}} | {rate: {start, per_second}} */
static int parse_source(struct pctx *p, const yaml_node_t *n, const char *fname,
                        struct fake_source *out)
{
        static const char *const kinds[] = {"constant", "ramp", "noise", "step", "rate"};
        static const struct {
                const char *keys[4]; /* parameter names, in order v0, v1, t, seed */
                int types[4];        /* 0 number, 1 duration, 2 seed */
                int required;        /* bitmask of keys that must be present */
        } params[] = {
            {{NULL}, {0}, 0},
            {{"from", "to", "over"}, {0, 0, 1}, 0x7},
            {{"mean", "stddev", "period", "seed"}, {0, 0, 1, 2}, 0x3},
            {{"before", "after", "at"}, {0, 0, 1}, 0x7},
            {{"start", "per_second"}, {0, 0}, 0x2},
        };
        const yaml_node_t *seen[ARRAY_SIZE(kinds)] = {0}, *k, *v;
        int kind = -1, r;

        *out = (struct fake_source){0};
        if (n && n->type == YAML_SCALAR_NODE) {
                out->kind = SRC_CONST;
                return get_double(p, n, fname, &out->v0);
        }
        r = want_mapping(p, n, fname);
        if (r < 0)
                return r;
        FOR_PAIRS(p, n, k, v)
        {
                if (kind >= 0)
                        return failf(p, k, -EINVAL, "%s: give exactly one source", fname);
                kind = key_index(p, k, kinds, ARRAY_SIZE(kinds), seen, fname);
                if (kind < 0)
                        return kind;
                if (kind == 0) {
                        out->kind = SRC_CONST;
                        return get_double(p, v, fname, &out->v0);
                }
                {
                        const yaml_node_t *pseen[4] = {0}, *pk, *pv;
                        int have = 0, nkeys = 0;

                        while (nkeys < 4 && params[kind].keys[nkeys])
                                nkeys++;
                        r = want_mapping(p, v, kinds[kind]);
                        if (r < 0)
                                return r;
                        FOR_PAIRS(p, v, pk, pv)
                        {
                                unsigned long long seed;
                                int i = key_index(p, pk, params[kind].keys, (size_t)nkeys, pseen,
                                                  kinds[kind]);
                                if (i < 0)
                                        return i;
                                have |= 1 << i;
                                switch (params[kind].types[i]) {
                                case 0:
                                        r = get_double(p, pv, params[kind].keys[i],
                                                       i == 0 ? &out->v0 : &out->v1);
                                        break;
                                case 1:
                                        r = get_duration_us(p, pv, params[kind].keys[i],
                                                            &out->t_us);
                                        break;
                                default:
                                        r = get_uint(p, pv, "seed", UINT64_MAX, &seed);
                                        out->seed = seed;
                                        break;
                                }
                                if (r < 0)
                                        return r;
                        }
                        if ((have & params[kind].required) != params[kind].required)
                                return failf(p, v, -EINVAL, "%s: %s needs %s%s%s%s%s", fname,
                                             kinds[kind], params[kind].keys[0],
                                             params[kind].keys[1] ? ", " : "",
                                             params[kind].keys[1] ? params[kind].keys[1] : "",
                                             params[kind].required & 4 ? ", " : "",
                                             params[kind].required & 4 ? params[kind].keys[2] : "");
                        if (kind == 2 && out->v1 < 0)
                                return failf(p, v, -EINVAL, "%s: stddev must not be negative",
                                             fname);
                        out->kind = (enum fake_src_kind)(kind + 1);
                }
        }
        if (kind < 0)
                return failf(p, n, -EINVAL, "%s: empty source", fname);
        return 0;
}

/* fields: {NAME: SOURCE, ...} applied to GPUs [first, last). */
static int parse_fields(struct pctx *p, const yaml_node_t *n, unsigned first, unsigned last)
{
        const yaml_node_t *k, *v;
        int r = want_mapping(p, n, "fields");

        if (r < 0)
                return r;
        FOR_PAIRS(p, n, k, v)
        {
                struct fake_source src;
                unsigned id;
                int idx;

                r = field_slot(p, k, &id, &idx);
                if (r < 0)
                        return r;
                if (id == FLD_FB_FREE)
                        return failf(p, k, -EINVAL,
                                     "FB_FREE is derived (FB_TOTAL - FB_RESERVED - FB_USED); set "
                                     "those instead");
                if (field_by_id(id)->type == FT_STR)
                        return failf(p, k, -EINVAL,
                                     "'%s' is a string; set it with the GPU's identity keys",
                                     field_by_id(id)->sym);
                r = parse_source(p, v, field_by_id(id)->sym, &src);
                if (r < 0)
                        return r;
                for (unsigned g = first; g < last; g++)
                        p->sc->gpus[g].src[idx] = src;
        }
        return 0;
}

static int parse_field_list(struct pctx *p, const yaml_node_t *n, unsigned first, unsigned last)
{
        if (!n || n->type != YAML_SEQUENCE_NODE)
                return failf(p, n, -EINVAL, "not_supported must be a list of field names");
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
                unsigned id;
                int idx, r = field_slot(p, node(p, *it), &id, &idx);

                if (r < 0)
                        return r;
                for (unsigned g = first; g < last; g++)
                        p->sc->gpus[g].unsupported[idx] = true;
        }
        return 0;
}

static int set_bus_id(struct pctx *p, const yaml_node_t *n, struct fake_gpu_conf *g)
{
        unsigned dom, bus, dev, fn;
        char tail;
        int r = get_string(p, n, "pci_bus_id", g->bus_id, sizeof(g->bus_id));

        if (r < 0)
                return r;
        if (sscanf(g->bus_id, "%x:%x:%x.%x%c", &dom, &bus, &dev, &fn, &tail) != 4 || bus > 255 ||
            dev > 31 || fn > 7)
                return failf(p, n, -EINVAL, "pci_bus_id: '%s' is not DOMAIN:BUS:DEVICE.FUNCTION",
                             g->bus_id);
        g->pci_domain = dom;
        g->pci_bus = bus;
        g->pci_device = dev;
        snprintf(g->bus_id, sizeof(g->bus_id), "%08X:%02X:%02X.%X", dom, bus, dev, fn);
        return 0;
}

static int parse_trace_ref(struct pctx *p, const yaml_node_t *n, bool *on)
{
        const char *s = NULL;
        char path[PATH_MAX];
        int r = want_scalar(p, n, "trace", &s);

        if (r < 0)
                return r;
        if (strcasecmp(s, "off") == 0 || strcasecmp(s, "false") == 0 || strcasecmp(s, "no") == 0 ||
            strcasecmp(s, "none") == 0) {
                *on = false;
                return 0;
        }
        *on = true;
        if (p->sc->trace)
                return failf(p, n, -EINVAL, "trace: only one trace per scenario");
        if (strcmp(s, "builtin") == 0)
                r = fake_trace_builtin(&p->sc->trace, p->err, p->errlen);
        else {
                if (s[0] == '/' || !p->base_dir)
                        snprintf(path, sizeof(path), "%s", s);
                else if ((size_t)snprintf(path, sizeof(path), "%s/%s", p->base_dir, s) >=
                         sizeof(path))
                        return failf(p, n, -ENAMETOOLONG, "trace: path too long");
                r = fake_trace_load(path, &p->sc->trace, p->err, p->errlen);
        }
        if (r < 0) {
                char inner[200];
                snprintf(inner, sizeof(inner), "%s", p->err);
                return failf(p, n, r, "trace '%.64s': %s", s, inner);
        }
        return 0;
}

/* nvlink_down: [0, 5]: link ids below 18, as a bit mask. */
static int parse_link_list(struct pctx *p, const yaml_node_t *n, uint32_t *mask)
{
        if (!n || n->type != YAML_SEQUENCE_NODE)
                return failf(p, n, -EINVAL, "nvlink_down must be a list of link ids");
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
                unsigned long long l;
                int r =
                    get_uint(p, node(p, *it), "nvlink_down link", NVML_NVLINK_MAX_LINKS - 1, &l);
                if (r < 0)
                        return r;
                *mask |= 1U << l;
        }
        return 0;
}

/* mig: [1g.18gb, 2g.35gb, ...]: the MIG instances, "<slices>g.<GB>gb" each, 7 slices at most. */
static int parse_mig(struct pctx *p, const yaml_node_t *n, struct fake_gpu_conf *g)
{
        unsigned slices = 0;

        if (!n || n->type != YAML_SEQUENCE_NODE)
                return failf(p, n, -EINVAL, "mig must be a list of profiles like 1g.18gb");
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
                const yaml_node_t *e = node(p, *it);
                unsigned sl = 0, gb = 0;
                char tail = 0;
                int r;

                if (g->n_mig >= FAKE_MIG_MAX)
                        return failf(p, e, -EINVAL, "mig: at most %d instances", FAKE_MIG_MAX);
                r = get_string(p, e, "mig profile", g->mig[g->n_mig], sizeof(g->mig[0]));
                if (r < 0)
                        return r;
                if (sscanf(g->mig[g->n_mig], "%ug.%ugb%c", &sl, &gb, &tail) != 2 || !sl || !gb)
                        return failf(p, e, -EINVAL, "mig: '%s' is not a profile like 1g.18gb",
                                     g->mig[g->n_mig]);
                slices += sl;
                g->n_mig++;
        }
        if (slices > 7)
                return failf(p, n, -EINVAL, "mig: %u compute slices, a GPU has 7", slices);
        return 0;
}

/* processes: [{pid: P, memory_mib: M, type: compute|graphics|both, sm: %, mem: %, enc: %,
 * dec: %, from: DUR, until: DUR, gpu_instance: GI, compute_instance: CI}, ...] */
static int parse_proc(struct pctx *p, const yaml_node_t *n, struct fake_proc *fp)
{
        static const char *const keys[] = {
            "pid",          "memory_mib",      "type", "sm", "mem", "enc", "dec", "from", "until",
            "gpu_instance", "compute_instance"};
        const yaml_node_t *seen[ARRAY_SIZE(keys)] = {0}, *k, *v;
        int r = want_mapping(p, n, "processes entry");

        if (r < 0)
                return r;
        *fp = (struct fake_proc){.compute = true, .gi = 0xFFFFFFFFu, .ci = 0xFFFFFFFFu};
        FOR_PAIRS(p, n, k, v)
        {
                int i = key_index(p, k, keys, ARRAY_SIZE(keys), seen, "processes entry");
                unsigned long long u = 0;
                const char *t = NULL;

                if (i < 0)
                        return i;
                switch (i) {
                case 0:
                        r = get_uint(p, v, "pid", 4194304, &u);
                        fp->pid = (unsigned)u;
                        break;
                case 1:
                        r = get_uint(p, v, "memory_mib", 1ULL << 24, &u);
                        fp->mem_bytes = (uint64_t)u << 20;
                        break;
                case 2:
                        r = want_scalar(p, v, "type", &t);
                        if (r < 0)
                                break;
                        fp->compute = !strcmp(t, "compute") || !strcmp(t, "both");
                        fp->graphics = !strcmp(t, "graphics") || !strcmp(t, "both");
                        if (!fp->compute && !fp->graphics)
                                r = failf(p, v, -EINVAL,
                                          "type: '%.32s' is not compute, graphics or both", t);
                        break;
                case 3:
                case 4:
                case 5:
                case 6: {
                        unsigned *dst[] = {&fp->sm, &fp->mem, &fp->enc, &fp->dec};
                        r = get_uint(p, v, keys[i], 100, &u);
                        *dst[i - 3] = (unsigned)u;
                        fp->util = true;
                        break;
                }
                case 7:
                        r = get_duration_us(p, v, "from", &fp->from_us);
                        break;
                case 8:
                        r = get_duration_us(p, v, "until", &fp->until_us);
                        break;
                case 9:
                        r = get_uint(p, v, "gpu_instance", 14, &u);
                        fp->gi = (unsigned)u;
                        break;
                case 10:
                        r = get_uint(p, v, "compute_instance", 7, &u);
                        fp->ci = (unsigned)u;
                        break;
                }
                if (r < 0)
                        return r;
        }
        if (!seen[0])
                return failf(p, n, -EINVAL, "processes entry: 'pid' is required");
        if (fp->until_us && fp->until_us <= fp->from_us)
                return failf(p, n, -EINVAL, "processes entry: 'until' must be after 'from'");
        return 0;
}

/* processes: N (N anonymous compute processes) or a list of scripted processes. */
static int parse_processes(struct pctx *p, const yaml_node_t *n, struct fake_gpu_conf *g)
{
        if (n && n->type == YAML_SEQUENCE_NODE) {
                for (yaml_node_item_t *it = n->data.sequence.items.start;
                     it < n->data.sequence.items.top; it++) {
                        int r;
                        if (g->n_procs >= FAKE_PROCS_MAX)
                                return failf(p, n, -EINVAL, "processes: at most %d per GPU",
                                             FAKE_PROCS_MAX);
                        r = parse_proc(p, node(p, *it), &g->procs[g->n_procs]);
                        if (r < 0)
                                return r;
                        g->n_procs++;
                }
                return 0;
        }
        {
                unsigned long long np = 0;
                int r = get_uint(p, n, "processes", 4096, &np);
                g->processes = (unsigned)np;
                return r;
        }
}

/* nvlink: {links: N, version: V}; topology: {numa_nodes: N, cpus_per_node: C} */
static int parse_small_map(struct pctx *p, const yaml_node_t *n, const char *what,
                           const char *const *keys, const unsigned long long *max, unsigned *out[],
                           size_t nk)
{
        const yaml_node_t *seen[4] = {0}, *k, *v;
        int r = want_mapping(p, n, what);

        if (r < 0)
                return r;
        FOR_PAIRS(p, n, k, v)
        {
                unsigned long long u;
                int i = key_index(p, k, keys, nk, seen, what);
                if (i < 0)
                        return i;
                if ((r = get_uint(p, v, keys[i], max[i], &u)) < 0)
                        return r;
                *out[i] = (unsigned)u;
        }
        return 0;
}

static int parse_gpu(struct pctx *p, const yaml_node_t *n, unsigned gi)
{
        static const char *const keys[] = {"name",          "uuid",          "serial",
                                           "pci_bus_id",    "vbios_version", "inforom_version",
                                           "trace",         "trace_offset",  "fields",
                                           "not_supported", "processes",     "nvlink_down",
                                           "numa_node",     "mig",           "mig_at",
                                           "accounting"};
        const yaml_node_t *seen[ARRAY_SIZE(keys)] = {0}, *k, *v;
        struct fake_gpu_conf *g = &p->sc->gpus[gi];
        int r = want_mapping(p, n, "per_gpu entry");

        if (r < 0)
                return r;
        FOR_PAIRS(p, n, k, v)
        {
                int i = key_index(p, k, keys, ARRAY_SIZE(keys), seen, "per_gpu");
                bool on;

                switch (i) {
                case 0:
                        r = get_string(p, v, "name", g->name, sizeof(g->name));
                        break;
                case 1:
                        r = get_string(p, v, "uuid", g->uuid, sizeof(g->uuid));
                        break;
                case 2:
                        r = get_string(p, v, "serial", g->serial, sizeof(g->serial));
                        break;
                case 3:
                        r = set_bus_id(p, v, g);
                        break;
                case 4:
                        r = get_string(p, v, "vbios_version", g->vbios, sizeof(g->vbios));
                        break;
                case 5:
                        r = get_string(p, v, "inforom_version", g->inforom, sizeof(g->inforom));
                        break;
                case 6:
                        r = get_bool(p, v, "trace", &on);
                        if (r >= 0 && on && !p->sc->trace)
                                r = failf(p, v, -EINVAL,
                                          "trace: the scenario has no trace (set top-level "
                                          "'trace:')");
                        g->trace = on;
                        break;
                case 7:
                        r = get_duration_us(p, v, "trace_offset", &g->trace_offset_us);
                        break;
                case 8:
                        r = parse_fields(p, v, gi, gi + 1);
                        break;
                case 9:
                        r = parse_field_list(p, v, gi, gi + 1);
                        break;
                case 10:
                        r = parse_processes(p, v, g);
                        break;
                case 11:
                        r = parse_link_list(p, v, &g->nvlink_down);
                        break;
                case 12: {
                        unsigned long long nn = 0;
                        r = get_uint(p, v, "numa_node", 63, &nn);
                        g->numa_node = (int)nn;
                        break;
                }
                case 13:
                        r = parse_mig(p, v, g);
                        break;
                case 14:
                        r = get_duration_us(p, v, "mig_at", &g->mig_at_us);
                        break;
                case 15:
                        r = get_bool(p, v, "accounting", &g->accounting);
                        break;
                default:
                        r = i;
                }
                if (r < 0)
                        return r;
        }
        return 0;
}

static int parse_per_gpu(struct pctx *p, const yaml_node_t *n)
{
        const yaml_node_t *k, *v;
        bool done[FAKE_GPUS_MAX] = {0};
        int r = want_mapping(p, n, "per_gpu");

        if (r < 0)
                return r;
        FOR_PAIRS(p, n, k, v)
        {
                unsigned long long gi;

                r = get_uint(p, k, "per_gpu key (GPU index)", FAKE_GPUS_MAX - 1, &gi);
                if (r < 0)
                        return r;
                if (gi >= p->sc->gpu_count)
                        return failf(p, k, -EINVAL, "per_gpu: GPU %llu but the scenario has %u", gi,
                                     p->sc->gpu_count);
                if (done[gi])
                        return failf(p, k, -EINVAL, "per_gpu: GPU %llu given twice", gi);
                done[gi] = true;
                r = parse_gpu(p, v, (unsigned)gi);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* costs: {scale: PCT, calls: {NAME: DUR | {cpu: DUR, sleep: DUR}}, field_values: {ID|default: DUR}} */
static int parse_costs(struct pctx *p, const yaml_node_t *n)
{
        static const char *const keys[] = {"scale", "calls", "field_values"};
        const yaml_node_t *seen[ARRAY_SIZE(keys)] = {0}, *k, *v, *ck, *cv;
        struct fake_scenario *sc = p->sc;
        int r = want_mapping(p, n, "costs");

        if (r < 0)
                return r;
        FOR_PAIRS(p, n, k, v)
        {
                int i = key_index(p, k, keys, ARRAY_SIZE(keys), seen, "costs");

                if (i < 0)
                        return i;
                if (i == 0) {
                        const char *s = NULL;
                        char buf[32], *end;
                        unsigned long pct;

                        r = want_scalar(p, v, "scale", &s);
                        if (r < 0)
                                return r;
                        snprintf(buf, sizeof(buf), "%s", s);
                        if (*buf && buf[strlen(buf) - 1] == '%')
                                buf[strlen(buf) - 1] = '\0';
                        errno = 0;
                        pct = strtoul(buf, &end, 10);
                        if (!*buf || *end || errno || *buf == '-' || pct > 100000)
                                return failf(p, v, -EINVAL,
                                             "scale: '%.32s' is not a percentage in 0..100000", s);
                        sc->cost_scale_pct = (unsigned)pct;
                        continue;
                }
                r = want_mapping(p, v, keys[i]);
                if (r < 0)
                        return r;
                FOR_PAIRS(p, v, ck, cv)
                {
                        const char *name = scalar(ck);
                        int64_t cpu = 0, sleep_ns = 0;

                        if (!name)
                                return failf(p, ck, -EINVAL, "%s: keys must be scalars", keys[i]);
                        if (cv && cv->type == YAML_MAPPING_NODE && i == 1) {
                                static const char *const ckeys[] = {"cpu", "sleep"};
                                const yaml_node_t *cseen[2] = {0}, *kk, *vv;

                                FOR_PAIRS(p, cv, kk, vv)
                                {
                                        int j = key_index(p, kk, ckeys, 2, cseen, name);
                                        if (j < 0)
                                                return j;
                                        r = get_duration_ns(p, vv, ckeys[j],
                                                            j == 0 ? &cpu : &sleep_ns);
                                        if (r < 0)
                                                return r;
                                }
                        } else {
                                r = get_duration_ns(p, cv, name, &cpu);
                                if (r < 0)
                                        return r;
                        }
                        if (i == 1) {
                                int c = fake_call_from_name(name);
                                if (c < 0)
                                        return failf(p, ck, -EINVAL,
                                                     "calls: '%.64s' is not an NVML function the "
                                                     "fake exports",
                                                     name);
                                sc->cost_cpu_ns[c] = cpu;
                                sc->cost_sleep_ns[c] = sleep_ns;
                        } else if (strcmp(name, "default") == 0) {
                                sc->fv_cost_default_ns = cpu;
                        } else {
                                unsigned long long id;
                                r = get_uint(p, ck, "field_values key (NVML field id)",
                                             FAKE_FV_IDS - 1, &id);
                                if (r < 0)
                                        return r;
                                sc->fv_cost_ns[id] = cpu;
                        }
                }
        }
        return 0;
}

static int cmp_event(const void *a, const void *b)
{
        const struct fake_event_conf *x = a, *y = b;

        return x->at_us < y->at_us ? -1 : x->at_us > y->at_us;
}

/* events: [{at: DUR, gpu: N, xid: N | ecc_dbe: N | ecc_sbe: N | lost: BOOL}, ...] */
static int parse_events(struct pctx *p, const yaml_node_t *n)
{
        static const char *const keys[] = {"at", "gpu", "xid", "ecc_dbe", "ecc_sbe", "lost"};
        struct fake_scenario *sc = p->sc;
        size_t count;

        if (!n || n->type != YAML_SEQUENCE_NODE)
                return failf(p, n, -EINVAL, "events must be a list");
        count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (count > FAKE_EVENTS_MAX)
                return failf(p, n, -E2BIG, "events: more than %d", FAKE_EVENTS_MAX);
        sc->events = calloc(count ? count : 1, sizeof(*sc->events));
        if (!sc->events)
                return -ENOMEM;
        for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
             it++) {
                const yaml_node_t *e = node(p, *it), *seen[ARRAY_SIZE(keys)] = {0}, *k, *v;
                struct fake_event_conf *ev = &sc->events[sc->n_events];
                unsigned long long u;
                int what = 0, r = want_mapping(p, e, "event");

                if (r < 0)
                        return r;
                FOR_PAIRS(p, e, k, v)
                {
                        bool b;
                        int i = key_index(p, k, keys, ARRAY_SIZE(keys), seen, "event");

                        if (i < 0)
                                return i;
                        switch (i) {
                        case 0:
                                r = get_duration_us(p, v, "at", &ev->at_us);
                                break;
                        case 1:
                                r = get_uint(p, v, "gpu", FAKE_GPUS_MAX - 1, &u);
                                if (r >= 0 && u >= sc->gpu_count)
                                        r = failf(p, v, -EINVAL,
                                                  "gpu: %llu but the scenario has %u", u,
                                                  sc->gpu_count);
                                ev->gpu = (unsigned)u;
                                break;
                        case 2:
                        case 3:
                        case 4:
                                r = get_uint(p, v, keys[i], i == 2 ? 0xffffffffULL : 1000000, &u);
                                if (r >= 0 && i != 2 && u == 0)
                                        r = failf(p, v, -EINVAL, "%s: must be at least 1", keys[i]);
                                ev->value = (long long)u;
                                ev->kind = i == 2 ? FEV_XID : i == 3 ? FEV_ECC_DBE : FEV_ECC_SBE;
                                what++;
                                break;
                        default:
                                r = get_bool(p, v, "lost", &b);
                                ev->value = b;
                                ev->kind = FEV_LOST;
                                what++;
                                break;
                        }
                        if (r < 0)
                                return r;
                }
                if (!seen[0] || !seen[1] || what != 1)
                        return failf(p, e, -EINVAL,
                                     "event needs 'at', 'gpu' and exactly one of xid, ecc_dbe, "
                                     "ecc_sbe, lost");
                sc->n_events++;
        }
        /* Stable order for equal times keeps the file's order (insertion sort; n is small). */
        for (size_t i = 1; i < sc->n_events; i++)
                for (size_t j = i; j > 0 && cmp_event(&sc->events[j - 1], &sc->events[j]) > 0;
                     j--) {
                        struct fake_event_conf t = sc->events[j];
                        sc->events[j] = sc->events[j - 1];
                        sc->events[j - 1] = t;
                }
        return 0;
}

enum top_key {
        K_VERSION,
        K_GPUS,
        K_MODEL,
        K_DRIVER,
        K_NVML,
        K_VBIOS,
        K_INFOROM,
        K_TRACE,
        K_SPREAD,
        K_FIELDS,
        K_NOT_SUPPORTED,
        K_PER_GPU,
        K_COSTS,
        K_EVENTS,
        K_NVLINK,
        K_TOPOLOGY,
        K_CUDA, /* the fake CUDA's section (src/fakecuda), not read here */
        K_ROOT, /* false: vigild runs without the rights NVML's setters need */
        K_COUNT,
};

static const char *const top_keys[K_COUNT] = {
    [K_VERSION] = "version",
    [K_GPUS] = "gpus",
    [K_MODEL] = "model",
    [K_DRIVER] = "driver_version",
    [K_NVML] = "nvml_version",
    [K_VBIOS] = "vbios_version",
    [K_INFOROM] = "inforom_version",
    [K_TRACE] = "trace",
    [K_SPREAD] = "trace_spread",
    [K_FIELDS] = "fields",
    [K_NOT_SUPPORTED] = "not_supported",
    [K_PER_GPU] = "per_gpu",
    [K_COSTS] = "costs",
    [K_EVENTS] = "events",
    [K_NVLINK] = "nvlink",
    [K_TOPOLOGY] = "topology",
    [K_CUDA] = "cuda",
    [K_ROOT] = "root",
};

static int parse_root(struct pctx *p, const yaml_node_t *root)
{
        const yaml_node_t *seen[K_COUNT] = {0}, *val[K_COUNT] = {0}, *k, *v;
        struct fake_scenario *sc = p->sc;
        char model[NVML_DEVICE_NAME_V2_BUFFER_SIZE] = "NVIDIA H200";
        char vbios[NVML_DEVICE_VBIOS_VERSION_BUFFER_SIZE] = "";
        char inforom[NVML_DEVICE_INFOROM_VERSION_BUFFER_SIZE] = "";
        unsigned long long u;
        bool trace_on = false;
        int64_t spread_us = -1;
        int r;

        if (!root)
                return 0; /* an empty file is the all-defaults scenario */
        r = want_mapping(p, root, "the scenario");
        if (r < 0)
                return r;
        FOR_PAIRS(p, root, k, v)
        {
                int i = key_index(p, k, top_keys, K_COUNT, seen, "scenario");
                if (i < 0)
                        return i;
                val[i] = v;
        }
        /* Fixed order: what later keys depend on (count, model, trace) comes first. */
        if (val[K_VERSION]) {
                r = get_uint(p, val[K_VERSION], "version", 1000, &u);
                if (r < 0)
                        return r;
                if (u != 1)
                        return failf(p, val[K_VERSION], -EINVAL, "version: only 1 is known");
        }
        if (val[K_GPUS]) {
                r = get_uint(p, val[K_GPUS], "gpus", FAKE_GPUS_MAX, &u);
                if (r < 0)
                        return r;
                if (u == 0)
                        return failf(p, val[K_GPUS], -EINVAL, "gpus: at least 1");
                sc->gpu_count = (unsigned)u;
        }
        if (val[K_MODEL] && (r = get_string(p, val[K_MODEL], "model", model, sizeof(model))) < 0)
                return r;
        if (val[K_DRIVER] && (r = get_string(p, val[K_DRIVER], "driver_version", sc->driver_version,
                                             sizeof(sc->driver_version))) < 0)
                return r;
        if (val[K_NVML] && (r = get_string(p, val[K_NVML], "nvml_version", sc->nvml_version,
                                           sizeof(sc->nvml_version))) < 0)
                return r;
        if (val[K_VBIOS] &&
            (r = get_string(p, val[K_VBIOS], "vbios_version", vbios, sizeof(vbios))) < 0)
                return r;
        if (val[K_INFOROM] &&
            (r = get_string(p, val[K_INFOROM], "inforom_version", inforom, sizeof(inforom))) < 0)
                return r;
        if (val[K_TRACE] && (r = parse_trace_ref(p, val[K_TRACE], &trace_on)) < 0)
                return r;
        if (val[K_SPREAD]) {
                const char *s = scalar(val[K_SPREAD]);
                if (!s || strcmp(s, "auto") != 0) {
                        r = get_duration_us(p, val[K_SPREAD], "trace_spread", &spread_us);
                        if (r < 0)
                                return r;
                }
        }
        if (spread_us < 0)
                spread_us = sc->trace ? sc->trace->length_us / sc->gpu_count : 0;
        for (unsigned g = 0; g < sc->gpu_count; g++) {
                gpu_defaults(&sc->gpus[g], g, model);
                if (*vbios)
                        snprintf(sc->gpus[g].vbios, sizeof(sc->gpus[g].vbios), "%s", vbios);
                if (*inforom)
                        snprintf(sc->gpus[g].inforom, sizeof(sc->gpus[g].inforom), "%s", inforom);
                sc->gpus[g].trace = trace_on;
                sc->gpus[g].trace_offset_us = (int64_t)g * spread_us;
        }
        if (val[K_FIELDS] && (r = parse_fields(p, val[K_FIELDS], 0, sc->gpu_count)) < 0)
                return r;
        if (val[K_NOT_SUPPORTED] &&
            (r = parse_field_list(p, val[K_NOT_SUPPORTED], 0, sc->gpu_count)) < 0)
                return r;
        if (val[K_PER_GPU] && (r = parse_per_gpu(p, val[K_PER_GPU])) < 0)
                return r;
        if (val[K_COSTS] && (r = parse_costs(p, val[K_COSTS])) < 0)
                return r;
        if (val[K_EVENTS] && (r = parse_events(p, val[K_EVENTS])) < 0)
                return r;
        if (val[K_ROOT]) {
                bool is_root = true;
                if ((r = get_bool(p, val[K_ROOT], "root", &is_root)) < 0)
                        return r;
                sc->not_root = !is_root;
        }
        sc->nvlink_version = 4;
        sc->numa_nodes = 1;
        sc->cpus_per_node = 16;
        if (val[K_NVLINK]) {
                static const char *const nk[] = {"links", "version"};
                static const unsigned long long nm[] = {NVML_NVLINK_MAX_LINKS, 10};
                unsigned *no[] = {&sc->nvlink_links, &sc->nvlink_version};
                if ((r = parse_small_map(p, val[K_NVLINK], "nvlink", nk, nm, no, 2)) < 0)
                        return r;
        }
        if (val[K_TOPOLOGY]) {
                static const char *const tk[] = {"numa_nodes", "cpus_per_node"};
                static const unsigned long long tm[] = {64, 1024};
                unsigned *to[] = {&sc->numa_nodes, &sc->cpus_per_node};
                if ((r = parse_small_map(p, val[K_TOPOLOGY], "topology", tk, tm, to, 2)) < 0)
                        return r;
                if (!sc->numa_nodes || !sc->cpus_per_node)
                        return failf(p, val[K_TOPOLOGY], -EINVAL,
                                     "topology: numa_nodes and cpus_per_node must be at least 1");
        }
        /* Two GPUs with one UUID would break lookups by UUID. */
        for (unsigned a = 0; a < sc->gpu_count; a++)
                for (unsigned b = a + 1; b < sc->gpu_count; b++)
                        if (strcmp(sc->gpus[a].uuid, sc->gpus[b].uuid) == 0)
                                return failf(p, val[K_PER_GPU], -EINVAL,
                                             "GPUs %u and %u share the uuid '%s'", a, b,
                                             sc->gpus[a].uuid);
        return 0;
}

struct fake_scenario *fake_scenario_free(struct fake_scenario *s)
{
        if (!s)
                return NULL;
        fake_trace_free(s->trace);
        free(s->events);
        free(s);
        return NULL;
}

static void scenario_freep(struct fake_scenario **s)
{
        fake_scenario_free(*s);
}

int fake_scenario_parse(const char *data, size_t len, const char *name, const char *base_dir,
                        struct fake_scenario **ret, char *err, size_t errlen)
{
        _cleanup_(scenario_freep) struct fake_scenario *sc = NULL;
        struct pctx p = {
            .name = name ? name : "<scenario>", .base_dir = base_dir, .err = err, .errlen = errlen};
        int r;

        if (errlen)
                err[0] = '\0';
        if (len > FAKE_SCENARIO_MAX) {
                snprintf(err, errlen, "%s:1: scenario larger than %d bytes", p.name,
                         FAKE_SCENARIO_MAX);
                return -E2BIG;
        }
        sc = calloc(1, sizeof(*sc));
        if (!sc)
                return -ENOMEM;
        snprintf(sc->driver_version, sizeof(sc->driver_version), "580.159");
        snprintf(sc->nvml_version, sizeof(sc->nvml_version), "12.580.159");
        sc->gpu_count = 8;
        sc->cost_scale_pct = 100;
        for (int i = 0; i < FAKE_FV_IDS; i++)
                sc->fv_cost_ns[i] = -1;
        p.sc = sc;

        r = ydoc_load(&p.yd, data, len, p.name, err, errlen);
        if (r < 0)
                return r;
        r = parse_root(&p, ydoc_root(&p.yd));
        ydoc_release(&p.yd);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(sc);
        return 0;
}

int fake_scenario_load(const char *path, struct fake_scenario **ret, char *err, size_t errlen)
{
        _cleanup_free_ char *data = NULL, *dircopy = NULL;
        size_t got = 0;
        int r = file_read_all(path, FAKE_SCENARIO_MAX, &data, &got);

        if (r == -EFBIG || r == -EISDIR) {
                snprintf(err, errlen, "%s:1: not a regular file of at most %d bytes", path,
                         FAKE_SCENARIO_MAX);
                return -EINVAL;
        }
        if (r < 0) {
                snprintf(err, errlen, "%s:1: cannot open scenario: %s", path, strerror(-r));
                return r;
        }
        dircopy = strdup(path);
        if (!dircopy)
                return -ENOMEM;
        return fake_scenario_parse(data, got, path, dirname(dircopy), ret, err, errlen);
}

int fake_scenario_default(struct fake_scenario **ret, char *err, size_t errlen)
{
        return fake_scenario_parse((const char *)fake_builtin_scenario, fake_builtin_scenario_len,
                                   "builtin:default.yaml", NULL, ret, err, errlen);
}
