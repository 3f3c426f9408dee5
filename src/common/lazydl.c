/* lazydl.c — libraries loaded at first use (lazydl.h). */
#include "lazydl.h"

#include <dlfcn.h>
#include <stdio.h>

static void load(lazy_dl *l, const char *const *names, void **const *slots, size_t n)
{
        void *dl = dlopen(l->soname, RTLD_NOW | RTLD_LOCAL);
        char sym[128];

        if (!dl) {
                snprintf(l->err, sizeof(l->err), "cannot load '%s': %s; %s", l->soname, dlerror(),
                         l->need);
                return;
        }
        for (size_t i = 0; i < n; i++) {
                snprintf(sym, sizeof(sym), "%s%s", l->prefix, names[i]);
                *slots[i] = dlsym(dl, sym);
                if (!*slots[i]) {
                        /* Keep dl open: unloading a library another part of the process may have
                         * loaded gains nothing, and nothing points into it once r < 0. */
                        snprintf(l->err, sizeof(l->err),
                                 "cannot load '%s': symbol '%s' is missing (library too old?); %s",
                                 l->soname, sym, l->need);
                        return;
                }
        }
        l->handle = dl;
        l->r = 0;
}

int lazy_dl_open(lazy_dl *l, const char *const *names, void **const *slots, size_t n, char *err,
                 size_t errlen)
{
        int r;

        pthread_mutex_lock(&l->lock);
        if (!l->tried) {
                l->tried = true;
                load(l, names, slots, n);
        }
        r = l->r;
        if (r < 0 && err && errlen)
                snprintf(err, errlen, "%s", l->err);
        pthread_mutex_unlock(&l->lock);
        return r;
}

void *dl_sym_first(void *handle, const char *const *names)
{
        for (; *names; names++) {
                void *p = dlsym(handle, *names);
                if (p)
                        return p;
        }
        return NULL;
}
