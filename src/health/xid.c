/* xid.c — the XID catalog table and its lookup (a binary search over xid.def, which is kept in
 * code order; a unit test checks the order). */
#include "xid.h"

static const xid_info catalog[] = {
#define XID(c, msg, sev, act) {c, msg, XID_SEV_##sev, XID_ACT_##act, 1},
#define XID_TEXT(c, text)
#include "xid.def"
#undef XID
#undef XID_TEXT
};

/* dcgm-exporter's err_msg label text, indexed by code. */
static const char *const err_text[] = {
#define XID(c, msg, sev, act)
#define XID_TEXT(c, text) [c] = text,
#include "xid.def"
#undef XID
#undef XID_TEXT
};

const char *xid_err_msg(uint32_t code)
{
        if (code < sizeof(err_text) / sizeof(err_text[0]) && err_text[code])
                return err_text[code];
        return "Unknown Error";
}

static const xid_info unknown = {0, "Unknown XID", XID_SEV_INFO, XID_ACT_CHECK_APP, 0};

const xid_info *xid_lookup(uint32_t code)
{
        size_t lo = 0, hi = sizeof(catalog) / sizeof(catalog[0]);

        while (lo < hi) {
                size_t mid = lo + (hi - lo) / 2;
                if (catalog[mid].code == code)
                        return &catalog[mid];
                if (catalog[mid].code < code)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return &unknown;
}

size_t xid_count(void)
{
        return sizeof(catalog) / sizeof(catalog[0]);
}

const xid_info *xid_at(size_t i)
{
        return i < xid_count() ? &catalog[i] : NULL;
}

const char *xid_severity_name(enum xid_severity s)
{
        switch (s) {
        case XID_SEV_WARNING:
                return "warning";
        case XID_SEV_CRITICAL:
                return "critical";
        default:
                return "info";
        }
}

const char *xid_action_name(enum xid_action a)
{
        static const char *const names[] = {"none",      "check_app", "restart_app",
                                            "reset_gpu", "reboot",    "inspect_hw"};
        return (unsigned)a < sizeof(names) / sizeof(names[0]) ? names[a] : "none";
}

const char *xid_action_text(enum xid_action a)
{
        switch (a) {
        case XID_ACT_CHECK_APP:
                return "Check the application that was running; if it recurs with other "
                       "applications, check the GPU.";
        case XID_ACT_RESTART_APP:
                return "Restart the application that encountered the error; other applications "
                       "can continue and the GPU reset can wait for a convenient time.";
        case XID_ACT_RESET_GPU:
                return "Drain the GPU and reset it or reboot the node.";
        case XID_ACT_REBOOT:
                return "Drain the node and reboot it; if the error recurs after reboots, inspect "
                       "the hardware.";
        case XID_ACT_INSPECT_HW:
                return "Re-seat the GPU, check power and cooling, and run a field diagnostic.";
        default:
                return "No action needed.";
        }
}
