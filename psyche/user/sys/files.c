/*
 * files: the network file server (section 3.3): files of the host's file
 * server (`psyche fileserver`, or the one `psyche up` runs), over TFTP.
 *
 *   files.get(name, buf, max, key)   fetch the file `name` into buf: its size, or an error with
 *                                    buf holding the reason (SVC_EIO: the host's, e.g. "File not
 *                                    found"; SVC_ETIMEDOUT; SVC_ETOOBIG)
 *   files.put(name, buf, len, key)   store len bytes at buf as `name`: len, or as for get
 *
 * `name` and `buf` are in the caller's memory: `key` must let this domain
 * read (get: and write) the realms that hold them, and the server holds it
 * from then on.  One transfer at a time: calls wait their turn.
 *
 * Started by init with the host server's UDP port: files PORT.
 */
#include "svc.h"
#include "tftpc.h"

#define LOCAL_PORT 1070

static struct tftp transfer;

static int get(const char *name, uint8_t *buf, uint32_t max, uint32_t key)
{
    hold_key((struct psy_domain *)magic_page()->domain, key);
    int n = tftp_get(&transfer, name, buf, max);
    if (n < 0)
        if (max)
            copy_text((char *)buf, transfer.error, max);
    return n;
}

static int put(const char *name, const uint8_t *buf, uint32_t len, uint32_t key)
{
    hold_key((struct psy_domain *)magic_page()->domain, key);
    return tftp_put(&transfer, name, buf, len);
}

const psy_operation psy_operations[PSY_PROG_OPS] = { (psy_operation)get, (psy_operation)put };

int main(int argc, char **argv, struct psy_domain *self)
{
    (void)self;
    if (argc < 2) {
        printf("files: usage: files PORT\n");
        return 2;
    }
    transfer.port = LOCAL_PORT;
    transfer.server_port = parse_number(argv[1]);
    int err = udp_bind(LOCAL_PORT);          /* on our VP: the one that runs every call */
    if (!err)
        err = svc_enter("files.get", (psy_operation)get);
    if (!err)
        err = svc_enter("files.put", (psy_operation)put);
    if (err)
        printf("files: %s\n", error_name(err));
    return err;
}
