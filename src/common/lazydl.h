/* lazydl.h — dlopen a shared library at its first use and resolve a table of entry points, once
 * per process. The one copy behind store/archive_dl.c (libarchive) and common/curl_dl.c (libcurl):
 * vigild does not map those libraries (nor what they pull in) until a backup or an alert needs
 * them, and a missing library is a clear error rather than a failure to start.
 *
 * Usage (an X-macro FUNCS(X) lists the entry points; api is a struct with a member of each name):
 *   static lazy_dl lib = LAZY_DL_INIT("libarchive.so.13", "archive_",
 *                                     "backups need the libarchive13 package");
 *   r = LAZY_DL_OPEN(&lib, ARCHIVE_DL_FUNCS, api, err, errlen);
 *
 * The handle is never closed: something else in the process may have loaded the library too, and
 * the resolved pointers stay valid for the life of the process. */
#ifndef VIGIL_COMMON_LAZYDL_H
#define VIGIL_COMMON_LAZYDL_H

#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

typedef struct lazy_dl {
        const char *soname;   /* what dlopen() is given */
        const char *prefix;   /* prepended to each name before dlsym ("curl_"), or "" */
        const char *need;     /* the remedy quoted in the error ("... needs the X package") */
        pthread_mutex_t lock; /* guards everything below */
        bool tried;           /* the first call has run; later calls return its result */
        int r;                /* 0 once every symbol resolved, else -ELIBACC */
        void *handle;         /* dlopen handle, NULL when loading failed */
        char err[512];        /* why loading failed */
} lazy_dl;

#define LAZY_DL_INIT(so, pfx, needs)                                                               \
        {                                                                                          \
                .soname = (so), .prefix = (pfx), .need = (needs),                                  \
                .lock = PTHREAD_MUTEX_INITIALIZER, .r = -ELIBACC                                   \
        }

/* The first call loads SONAME and stores dlsym(PREFIX NAMES[i]) into *SLOTS[i] for i < N; later
 * calls return the first call's result at once (the slots are filled only by the first call, so
 * every caller must pass the same table). Returns 0, or -ELIBACC with err set to "cannot load
 * 'SONAME': REASON; NEED" (library missing, or a symbol missing: too old). Thread-safe. */
int lazy_dl_open(lazy_dl *l, const char *const *names, void **const *slots, size_t n, char *err,
                 size_t errlen);

/* lazy_dl_open over the entry points an X-macro FUNCS lists, into the members of the same names
 * of api (a struct lvalue): the tables of names and slots it needs, written once for every
 * loader. Evaluates to lazy_dl_open's result. */
#define LAZY_DL_NAME_(name) #name,
#define LAZY_DL_SLOT_(name) (void **)&lazy_dl_api_->name,
#define LAZY_DL_OPEN(lib, FUNCS, api, err, errlen)                                                 \
        __extension__({                                                                            \
                __typeof__(api) *lazy_dl_api_ = &(api);                                            \
                static const char *const lazy_dl_names_[] = {FUNCS(LAZY_DL_NAME_)};                \
                void **const lazy_dl_slots_[] = {FUNCS(LAZY_DL_SLOT_)};                            \
                lazy_dl_open((lib), lazy_dl_names_, lazy_dl_slots_,                                \
                             sizeof(lazy_dl_names_) / sizeof(lazy_dl_names_[0]), (err), (errlen)); \
        })

/* Resolve one symbol of an opened library: the first of NAMES (newest version first, NULL
 * terminated) that HANDLE exports, or NULL. */
void *dl_sym_first(void *handle, const char *const *names);

#endif
