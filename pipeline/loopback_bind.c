/* LD_PRELOAD shim: a server that asks to listen on every interface listens on loopback only.
 *
 * TensorFlow's tf.data service servers take a port but no bind address: they
 * always listen on 0.0.0.0 / [::], and the service has no authentication.
 * `reviewflow data-service` preloads this library (when --host is localhost)
 * so that a wildcard IPv4 bind becomes 127.0.0.1 and a wildcard IPv6 bind
 * fails, which makes gRPC fall back to IPv4. Other binds pass through.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>

typedef int (*bind_fn)(int, const struct sockaddr *, socklen_t);

int bind(int fd, const struct sockaddr *addr, socklen_t len) {
    static bind_fn real_bind;
    if (!real_bind) real_bind = (bind_fn)dlsym(RTLD_NEXT, "bind");
    if (addr && addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        struct sockaddr_in local;
        memcpy(&local, addr, sizeof local);
        if (local.sin_addr.s_addr == htonl(INADDR_ANY)) {
            local.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
            return real_bind(fd, (const struct sockaddr *)&local, sizeof local);
        }
    } else if (addr && addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        struct sockaddr_in6 wanted;
        memcpy(&wanted, addr, sizeof wanted);
        if (IN6_IS_ADDR_UNSPECIFIED(&wanted.sin6_addr)) {
            errno = EAFNOSUPPORT;
            return -1;
        }
    }
    return real_bind(fd, addr, len);
}
