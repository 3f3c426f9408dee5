/* names.c — container id -> namespace, pod and container names, from the links the kubelet keeps
 * in /var/log/containers: "<pod>_<namespace>_<container>-<container id>.log" (kubelet's
 * BuildContainerLogsDirectory naming; pod, namespace and container names cannot hold '_'). This
 * is what joins a process's cgroup (which names its container by id) to the names the kubelet's
 * pod-resources API uses, for every pod, also when several share one GPU. A directory read, no
 * file contents; bounded to KUBE_NAMES_MAX entries. */
#include "workload-internal.h"

#include <ctype.h>
#include <stdbool.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool part(char *dst, size_t cap, const char *s, size_t len)
{
        if (!len || len >= cap)
                return false;
        memcpy(dst, s, len);
        dst[len] = '\0';
        return true;
}

int names_parse(const char *file, kube_names *out)
{
        size_t len = strlen(file), idlen;
        const char *u1, *u2, *dash, *end;

        if (len < 5 || strcmp(file + len - 4, ".log") != 0)
                return -EINVAL;
        end = file + len - 4;
        dash = end;
        while (dash > file && dash[-1] != '-')
                dash--;
        if (dash == file)
                return -EINVAL;
        idlen = (size_t)(end - dash);
        if (idlen < 12 || idlen > 64)
                return -EINVAL;
        for (size_t i = 0; i < idlen; i++)
                if (!isxdigit((unsigned char)dash[i]))
                        return -EINVAL;
        u1 = memchr(file, '_', (size_t)(dash - file));
        u2 = u1 ? memchr(u1 + 1, '_', (size_t)(dash - u1 - 1)) : NULL;
        if (!u1 || !u2 || memchr(u2 + 1, '_', (size_t)(dash - u2 - 1)))
                return -EINVAL;
        if (!part(out->pod, sizeof(out->pod), file, (size_t)(u1 - file)) ||
            !part(out->ns, sizeof(out->ns), u1 + 1, (size_t)(u2 - u1 - 1)) ||
            !part(out->container, sizeof(out->container), u2 + 1, (size_t)(dash - 1 - u2 - 1)) ||
            !part(out->id, sizeof(out->id), dash, idlen))
                return -EINVAL;
        return 0;
}

int names_scan(const char *dir, kube_names **ret, size_t *n)
{
        DIR *d = opendir(dir);
        kube_names *out = NULL;
        size_t k = 0, cap = 0;
        struct dirent *e;

        if (!d)
                return -errno;
        while ((e = readdir(d)) && k < KUBE_NAMES_MAX) {
                kube_names kn;
                if (names_parse(e->d_name, &kn) < 0)
                        continue;
                if (k == cap) {
                        size_t nc = cap ? cap * 2 : 64;
                        kube_names *t = realloc(out, nc * sizeof(*out));
                        if (!t) {
                                free(out);
                                closedir(d);
                                return -ENOMEM;
                        }
                        out = t;
                        cap = nc;
                }
                out[k++] = kn;
        }
        closedir(d);
        *ret = out;
        *n = k;
        return 0;
}
