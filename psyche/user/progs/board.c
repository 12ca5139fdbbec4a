/*
 * board: a server that shares a page with its clients and offers them
 * operations, to show both ways two domains talk (with progs/pin.c, the
 * client): memory they both map, and protected calls.
 *
 *   board            serve until board.stop; then withdraw the names, free
 *                    the page, and return from main (so run it in the
 *                    background: `run board &`; pin starts one itself if
 *                    none runs)
 *
 * It makes a one-page realm (struct board_page, board.h), adds a second key
 * to its access list that reads and writes it, and enters with the name
 * server
 *
 *   board.page    the page's address and that key (a value, not an operation)
 *   board.post(from)  -> (posts, board's domain): read the note the client
 *                        wrote in the page, write a reply there
 *   board.read()      -> (posts, board's domain)
 *   board.stop()      -> 0: main returns
 *
 * main runs as a protected call on the program's one VP, which takes one
 * call at a time: while it waits for board.stop, a second VP of the domain
 * takes the calls (the first has no call-in handler meanwhile, so the
 * kernel gives them all to the second), and the first wakes on its
 * interval timer to look whether it was told to stop.
 */
#include "board.h"
#include "svc.h"
#include "ulib.h"

#define WAKE_CYCLES 100000              /* 10 ms: how often main looks */
#define SERVE_STACK 8192

extern struct psy_vp _psy_vp;           /* prog.c: the program's VP, which runs main */

static struct board_page *page;
static uint32_t page_key, client_key;
static volatile uint32_t stopped;
static struct psy_vp serve_vp __attribute__((aligned(512)));
static int serve_id = -1;
static uint8_t serve_init_stack[2048] __attribute__((aligned(16)));
static uint8_t serve_op_stack[SERVE_STACK] __attribute__((aligned(16)));

static uint32_t domain_id(void)
{
    return ((struct psy_domain *)magic_page()->domain)->id;
}

static uint64_t pair(uint32_t first, uint32_t second)
{
    return (uint64_t)second << 32 | first;
}

static uint64_t board_post(uint32_t from)
{
    char note[BOARD_TEXT];
    copy_text(note, page->note, sizeof note);           /* once: the client may write on */
    uint32_t n = ++page->posts;
    printf("board: domain %u (vp %u, node %u) took post %u by protected call from domain %u: "
           "read \"%s\" in the shared page\n", domain_id(), self_vp()->id, magic_page()->node, n, from,
           note);
    char *r = page->reply;
    copy_text(r, "board read \"", BOARD_TEXT);
    uint32_t i = 0;
    while (r[i])
        i++;
    copy_text(r + i, note, BOARD_TEXT - i - 2);
    while (r[i])
        i++;
    copy_text(r + i, "\"", BOARD_TEXT - i);
    return pair(n, domain_id());
}

static uint64_t board_read(void)
{
    return pair(page->posts, domain_id());
}

static int board_stop(void)
{
    stopped = 1;
    return 0;
}

const psy_operation psy_operations[PSY_PROG_OPS] = {
    (psy_operation)board_post, (psy_operation)board_read, (psy_operation)board_stop,
};

/* The second VP: waits for calls, and runs each on its own stack. */
static void serve_init(uint32_t kind, uint32_t id)
{
    (void)kind, (void)id;
    serve_vp.disabled = 0;
    for (;;)
        psy_block();
}

static void serve_call_in(uint32_t kind, uint32_t name, uint32_t op)
{
    (void)kind, (void)name, (void)op;
    struct psy_state st = serve_vp.arrived;
    st.x[1] = (uint32_t)serve_op_stack + sizeof serve_op_stack;
    psy_resume(&st);
}

/* main's VP, woken by its interval timer: back to the wait. */
static void wake(uint32_t kind, uint32_t a1, uint32_t a2)
{
    (void)kind, (void)a1, (void)a2;
    struct psy_state back = _psy_vp.saved;
    _psy_vp.disabled = 0;
    psy_resume(&back);
}

static const char *const names[] = { "board.page", "board.read", "board.stop", "board.post" };

static uint32_t name_value(uint32_t i)
{
    static const psy_operation ops[] = { 0, (psy_operation)board_read, (psy_operation)board_stop, (psy_operation)board_post };
    return i == 0 ? (uint32_t)page : (uint32_t)ops[i];
}

static uint32_t name_key(uint32_t i)
{
    return i == 0 ? client_key : _psy_links.self_invoke;
}

static int start(void)
{
    int va = make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, page_key, 0);
    if (va < 0)
        return va;
    page = (struct board_page *)va;
    int err = set_access((uint32_t)va, page_key, client_key, PSY_R | PSY_W);
    if (err)
        return err;
    page->board_domain = domain_id();
    page->magic = BOARD_MAGIC;
    serve_vp.magic = PSY_VP_MAGIC;
    serve_vp.init_sp = (uint32_t)serve_init_stack + sizeof serve_init_stack;
    serve_vp.handler[PSY_SWI_INIT] = (uint32_t)serve_init;
    serve_vp.handler[PSY_SWI_CALL_IN] = (uint32_t)serve_call_in;
    serve_id = create_vp(0, magic_page()->node, &serve_vp);
    if (serve_id < 0)
        return serve_id;
    _psy_vp.handler[PSY_SWI_CALL_IN] = 0;        /* from now on the second VP takes the calls */
    for (uint32_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        err = svc_offer(names[i], name_value(i), name_key(i));
        if (err) {
            while (i-- > 0)
                svc_withdraw(names[i], name_value(i), name_key(i));
            return err;
        }
    }
    return 0;
}

static void finish(void)
{
    for (uint32_t i = sizeof names / sizeof names[0]; i-- > 0;)
        svc_withdraw(names[i], name_value(i), name_key(i));
    if (serve_id >= 0)
        destroy_vp((uint32_t)serve_id);
    if (page)
        destroy_realm((uint32_t)page, page_key);
}

int main(int argc, char **argv, struct psy_domain *self)
{
    (void)argc, (void)argv;
    uint32_t call_in = _psy_vp.handler[PSY_SWI_CALL_IN];
    page_key = new_key();
    client_key = new_key();
    hold_key(self, page_key);
    int err = start();
    if (err) {
        printf("board: %s\n", err == SVC_EEXIST ? "another board has the names" : error_name(err));
        finish();
        _psy_vp.handler[PSY_SWI_CALL_IN] = call_in;
        return 1;
    }
    printf("board: domain %u serves on vp %d, node %u; the shared page is %p\n", self->id, serve_id,
           magic_page()->node, (void *)page);
    _psy_vp.handler[PSY_SWI_INTERVAL] = (uint32_t)wake;
    _psy_vp.interval = WAKE_CYCLES;
    while (!stopped) {
        _psy_vp.disabled = 0;
        psy_block();
    }
    _psy_vp.disabled = 1;
    _psy_vp.interval = 0;
    uint32_t posts = page->posts;
    finish();
    _psy_vp.handler[PSY_SWI_CALL_IN] = call_in;  /* the program's VP takes calls again */
    printf("board: domain %u stopped after %u posts\n", self->id, posts);
    return 0;
}
