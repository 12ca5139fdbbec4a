/*
 * pin: the client of progs/board.c.  Two programs, two protection
 * domains, and both ways they talk: a page both map, and protected calls.
 *
 *   pin [MESSAGE]    pin MESSAGE (default "hello") on the board
 *   pin stop         tell the board to stop (board.stop)
 *
 * pin finds the board by name: "board.page" gives the shared page's address
 * and a key that reads and writes it, which pin adds to its own domain; it
 * writes MESSAGE into the page with plain stores, then calls board.post by
 * protected call to say so, and reads back the reply board wrote into the
 * page.  Each step prints which domain did what.
 *
 * If no board runs, pin starts one itself: it asks the loader for the
 * program file "board" (a realm, domain and VP of its own, as for the
 * shell's `run`), and with the thread package runs two processes on its VP:
 * one calls board's main, which serves until board.stop, the other pins the
 * message and then stops the board; a process's protected call gives the
 * VP to the other (uthread.h).  Then pin unloads the board.
 */
#include "board.h"
#include "svc.h"
#include "uthread.h"

#define WAIT_TRIES 1000                 /* lookups of board.post while a board we load starts */

typedef int (*main_op)(uint32_t argc, uint32_t argv);

static const char *message = "hello";
static struct load_request *req;        /* shared with the loader */
static volatile int board_status = 1, client_status = 1;

static uint32_t me(void)
{
    return ((struct psy_domain *)magic_page()->domain)->id;
}

/* Pin the message: 0, or 1 with the reason printed. */
static int client(void)
{
    struct psy_link page_link, post, read;
    int err = svc_lookup("board.page", &page_link);
    if (!err)
        err = svc_lookup("board.post", &post);
    if (!err)
        err = svc_lookup("board.read", &read);
    if (err) {
        printf("pin: no board: %s\n", error_name(err));
        return 1;
    }
    struct board_page *page = (struct board_page *)page_link.op;
    if (page->magic != BOARD_MAGIC) {                  /* the first touch opens the realm */
        printf("pin: %p is not a board's page\n", (void *)page);
        return 1;
    }
    copy_text(page->note, message, BOARD_TEXT);
    page->writer_domain = me();
    printf("pin: domain %u wrote \"%s\" into the shared page %p of domain %u\n", me(), page->note,
           (void *)page, page->board_domain);
    uint64_t r = svc_call(&post, me(), 0, 0, 0);
    printf("pin: domain %u called board.post by protected call: domain %u took post %u\n", me(),
           op_second(r), op_first(r));
    printf("pin: domain %u read back in the shared page: %s\n", me(), page->reply);
    return op_first(r) == op_first(svc_call(&read, 0, 0, 0, 0)) ? 0 : 1;
}

static int stop_board(void)
{
    struct psy_link read, stop;
    int err = svc_lookup("board.read", &read);
    if (!err)
        err = svc_lookup("board.stop", &stop);
    if (err) {
        printf("pin: no board: %s\n", error_name(err));
        return 1;
    }
    uint64_t r = svc_call(&read, 0, 0, 0, 0);
    svc_call(&stop, 0, 0, 0, 0);
    printf("pin: domain %u told domain %u to stop after %u posts\n", me(), op_second(r), op_first(r));
    return 0;
}

/* A process: board's main, in board's domain, until board.stop. */
static void run_board(void *arg)
{
    (void)arg;
    board_status = ((main_op)req->main)(req->argc, req->argv);
}

/* A process: once the board we loaded has entered its names, pin, then stop it. */
static void pin_and_stop(void *arg)
{
    (void)arg;
    struct psy_link post;
    uint32_t tries = 0;
    while (svc_lookup("board.post", &post) && ++tries < WAIT_TRIES)
        ut_yield();
    client_status = tries < WAIT_TRIES ? client() : (printf("pin: the board never came\n"), 1);
    client_status |= stop_board();
}

/* Load the program file "board", run it and pin beside it, unload it. */
static int with_own_board(struct psy_domain *self)
{
    struct psy_link load, unload;
    int err = svc_lookup("loader.load", &load);
    if (!err)
        err = svc_lookup("loader.unload", &unload);
    uint32_t key = new_key();
    int realm = err ? err : make_realm(PSY_PAGE_SIZE, PSY_R | PSY_W, key, 0);
    if (realm < 0) {
        printf("pin: %s\n", error_name(realm));
        return 1;
    }
    add_key(self, key);
    req = (struct load_request *)realm;
    copy_text(req->name, "board", sizeof req->name);
    copy_text(req->args, "board", sizeof req->args);
    req->node = magic_page()->node;
    int status = 1;
    err = (int)op_first(svc_call(&load, (uint32_t)req, key, 0, 0));
    if (err) {
        printf("pin: loading board: %s\n", req->why[0] ? req->why : error_name(err));
        goto out;
    }
    printf("pin: domain %u had the loader place board at %p\n", self->id, (void *)req->base);
    hold_key(self, req->key);
    err = ut_init(UT_SCHED_RR);
    if (!err && ut_create(run_board, 0, 0, 0) < 0)
        err = PSY_ENOMEM;
    if (!err && ut_create(pin_and_stop, 0, 0, 0) < 0)
        err = PSY_ENOMEM;
    if (err)
        printf("pin: %s\n", error_name(err));
    else
        ut_run();
    drop_key(self, req->key);
    err = (int)op_first(svc_call(&unload, req->handle, 0, 0, 0));
    if (err)
        printf("pin: unloading board: %s\n", error_name(err));
    else
        status = board_status | client_status;
out:
    destroy_realm((uint32_t)realm, key);
    drop_key(self, key);
    return status;
}

int main(int argc, char **argv, struct psy_domain *self)
{
    if (argc > 1 && strcmp(argv[1], "stop") == 0)
        return stop_board();
    if (argc > 1)
        message = argv[1];
    struct psy_link post;
    if (svc_lookup("board.post", &post) == 0)
        return client();
    printf("pin: no board runs; domain %u starts one\n", self->id);
    return with_own_board(self);
}
