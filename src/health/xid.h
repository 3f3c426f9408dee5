/* xid.h — the XID catalog (xid.def): what each driver XID code means, how bad it is and what to
 * do first. Used for dcgm-exporter's err_msg label now and by the health engine later.
 * Read-only tables; any thread may call. */
#ifndef VIGIL_HEALTH_XID_H
#define VIGIL_HEALTH_XID_H

#include <stddef.h>
#include <stdint.h>

enum xid_severity {
        XID_SEV_INFO = 0,     /* informational or application-caused */
        XID_SEV_WARNING = 1,  /* watch; the GPU can keep working */
        XID_SEV_CRITICAL = 2, /* take the GPU out of service until the action is done */
};

enum xid_action {
        XID_ACT_NONE = 0,        /* no action needed */
        XID_ACT_CHECK_APP = 1,   /* usually the application: check it, then the GPU */
        XID_ACT_RESTART_APP = 2, /* restart the affected application */
        XID_ACT_RESET_GPU = 3,   /* drain and reset the GPU */
        XID_ACT_REBOOT = 4,      /* drain and reboot the node */
        XID_ACT_INSPECT_HW = 5,  /* hardware inspection (re-seat, power, cooling, field diag) */
};

typedef struct xid_info {
        uint32_t code;              /* XID code */
        const char *message;        /* NVIDIA's short name; "Unknown XID" when not catalogued */
        enum xid_severity severity; /* how bad */
        enum xid_action action;     /* what to do first */
        int known;                  /* 1 when the code is in the catalog */
} xid_info;

/* Never NULL: an uncatalogued code returns a shared entry with message "Unknown XID",
 * severity INFO, action CHECK_APP, known 0 (its code field is 0). */
const xid_info *xid_lookup(uint32_t code);
/* Catalog entries in code order, for listing; i in [0, xid_count()). */
size_t xid_count(void);
const xid_info *xid_at(size_t i);
/* The err_msg label dcgm-exporter gives code: NVIDIA's catalog wording ("No Error" for 0),
 * "Unknown Error" for a code it does not list. Never NULL; static storage. */
const char *xid_err_msg(uint32_t code);
const char *xid_severity_name(enum xid_severity s); /* "info", "warning", "critical" */
const char *xid_action_name(enum xid_action a);     /* "none", "check_app", ... */
const char *xid_action_text(enum xid_action a);     /* one sentence for operators */

#endif
