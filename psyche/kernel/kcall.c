/*
 * kcall.c: kernel calls, `ecall` from U mode (docs/kernel-interface.md).
 *
 * The call number is in a7, the arguments in a0..a3, the result goes back
 * in a0: a value >= 0 or a negative PSY_E* error.  Each call checks its
 * arguments itself and changes nothing when one is bad; none of them can
 * fault, because user memory is reached through the domain's realms and
 * their frames (domain_read), never through the user's page table.
 */
#include "console.h"
#include "net.h"
#include "node.h"
#include "pcall.h"
#include "realm.h"
#include "sched.h"
#include "trap.h"
#include "user.h"
#include "vp.h"

#define PUTS_MAX   1024
#define PUTS_CHUNK 128

static int kc_putc(uint32_t c)
{
    char s[2] = { (char)c, 0 };
    kputs(s);
    return 0;
}

static int kc_puts(struct domain *d, uint32_t va, uint32_t len)
{
    char buf[PUTS_CHUNK + 1];
    if (len > PUTS_MAX)
        return PSY_EINVAL;
    for (uint32_t done = 0; done < len; done += PUTS_CHUNK) {
        uint32_t n = len - done < PUTS_CHUNK ? len - done : PUTS_CHUNK;
        if (domain_read(d, va + done, buf, n))
            return PSY_EFAULT;
        buf[n] = 0;
        kputs(buf);
    }
    return (int)len;
}

static int kc_make_realm(struct domain *d, uint32_t size, uint32_t flags, uint32_t key,
                         uint32_t at)
{
    struct realm *r;
    int err = realm_make(d, size, flags, key, at, &r);
    return err ? err : (int)r->base;
}

static int kc_make_domain(uint32_t key)
{
    if (key == 0)
        return PSY_EINVAL;
    struct domain *nd = domain_make(key, false);
    return nd ? (int)nd->desc->base : PSY_ENOMEM;
}

void kcall(struct trapframe *tf)
{
    struct domain *d = this_node.current->dom;
    int ret;
    switch (tf->a7) {
    case PSY_PUTC: ret = kc_putc(tf->a0); break;
    case PSY_PUTS: ret = kc_puts(d, tf->a0, tf->a1); break;
    case PSY_EXIT: user_leave((int)tf->a0, false);
    case PSY_MAKE_REALM: ret = kc_make_realm(d, tf->a0, tf->a1, tf->a2, tf->a3); break;
    case PSY_DESTROY_REALM: ret = realm_destroy(tf->a0, tf->a1); break;
    case PSY_MAKE_DOMAIN: ret = kc_make_domain(tf->a0); break;
    case PSY_SET_ACCESS: ret = realm_set_access(tf->a0, tf->a1, tf->a2, tf->a3); break;
    case PSY_DESTROY_DOMAIN: ret = domain_destroy_call(tf->a0, tf->a1, tf->a2); break;
    case PSY_CREATE_VP: ret = vp_create(d, tf->a0, tf->a1, tf->a2); break;
    case PSY_DESTROY_VP: ret = vp_destroy(d, tf->a0); break;
    case PSY_SET_VP: ret = vp_set_desc(tf->a0); break;
    case PSY_BLOCK: ret = vp_block(); break;
    case PSY_SET_HOME: ret = pcall_set_home(d, tf->a0, tf->a1, tf->a2); break;
    case PSY_SET_OPS: ret = pcall_set_ops(d, tf->a0, tf->a1, tf->a2, tf->a3); break;
    case PSY_REALM_INFO: ret = realm_info(d, tf->a0, tf->a1, tf->a2); break;
    case PSY_UDP_BIND: ret = net_udp_bind(tf->a0); break;
    case PSY_UDP_SEND: ret = net_udp_send(d, tf->a0, tf->a1, tf->a2, tf->a3); break;
    case PSY_UDP_RECV: ret = net_udp_recv(d, tf->a0, tf->a1, tf->a2, tf->a3); break;
    case PSY_UDP_UNBIND: ret = net_udp_unbind(d, tf->a0); break;
    case PSY_CONSOLE_ATTACH: ret = console_attach(); break;
    case PSY_CONSOLE_READ: ret = console_read(d, tf->a0, tf->a1); break;
    case PSY_CONSOLE_DETACH: ret = console_detach(); break;
    case PSY_VP_INFO: ret = vp_info(d, tf->a0, tf->a1); break;
    case PSY_DOMAIN_INFO: ret = domain_info(d, tf->a0, tf->a1); break;
    case PSY_RESUME:
        ret = vp_resume(tf, tf->a0);
        if (ret == 0)
            return;          /* every register is the state's, a0 included */
        break;
    default: ret = PSY_ENOSYS; break;
    }
    tf->a0 = (uint32_t)ret;
}
