/*
 * sh: the command interpreter (section 3.3), in a protection domain of its
 * own like every other program.
 *
 * Its main operation (which init calls) attaches its VP to the console's
 * input; the kernel monitor's `shell` then hands input over.  Each typed
 * line is a software interrupt, whose handler runs the command, making
 * protected calls to the loader, the file server and the programs.
 *
 *   run [@NODE] NAME [ARG ...]   load the program file NAME on NODE (default 0), call its main
 *   run ... &                    the same, in the background: a VP of ours waits in the call
 *   jobs, kill J                 the background programs; unload one while it runs
 *   time run ...                 the same, and how long loading and running took
 *   programs                     the loader's table: what runs where
 *   services                     the names the name server knows
 *   realms, domains, vps         the kernel's realms, domains and VPs, as its info calls show them
 *   cat FILE                     print a file of the host's file server
 *   put FILE TEXT ...            write TEXT as FILE there
 *   help
 *
 * The monitor takes `!COMMAND` lines itself; `!monitor` takes the console
 * back, and the shell stays attached for the monitor's next `shell`.
 */
#include "svc.h"
#include "ulib.h"

#define FILE_BUF   (64 * 1024)
#define LINE_MAX   160

extern struct psy_vp _psy_vp;                  /* prog.c: our VP */

static struct psy_link load_op, unload_op, get_op, put_op, entry_op;
static const struct loaded_table *table;
static struct load_request *req;               /* a page shared with the loader */
static uint32_t req_key;
static char *files;                            /* FILE_BUF bytes shared with the file server */
static uint32_t files_key;
static char line[LINE_MAX + 1];

static struct psy_domain *self(void)
{
    return (struct psy_domain *)magic_page()->domain;
}

static char *skip_spaces(char *s)
{
    while (*s == ' ')
        s++;
    return s;
}

/* The first word of s, NUL-ended in place; *rest after it. */
static char *word(char *s, char **rest)
{
    s = skip_spaces(s);
    char *e = s;
    while (*e && *e != ' ')
        e++;
    *rest = *e ? e + 1 : e;
    *e = 0;
    return s;
}

typedef int (*main_op)(uint32_t argc, uint32_t argv);

#define JOBS 4
enum { JOB_FREE, JOB_RUNNING, JOB_KILLED };

/*
 * A program run in the background: a VP of our own domain makes the call of
 * its main and waits in it, while the shell's VP goes on taking lines.
 */
struct job {
    struct psy_vp vp;                   /* first, and aligned so that it lies in one page */
    uint8_t stack[4096] __attribute__((aligned(16)));
    struct load_request *req;           /* its page of the requests realm */
    volatile uint32_t state;
};

static struct job jobs[JOBS] __attribute__((aligned(512)));
static uint64_t typed;                  /* when the command line came, for `time` */

/* Have the loader load what req names: 0, or the error, said. */
static int load(struct load_request *r, char *args, uint32_t node)
{
    memset(r, 0, sizeof *r);
    copy_text(r->args, args, sizeof r->args);
    char *rest;
    copy_text(r->name, word(args, &rest), sizeof r->name);
    r->node = node;
    int err = (int)op_first(svc_call(&load_op, (uint32_t)r, req_key, 0, 0));
    if (err)
        printf("run: %s: %s\n", r->name, r->why[0] ? r->why : error_name(err));
    return err;
}

/* The program returned (or was stopped, or killed): say so; unload it unless kill did. */
static void finished(struct load_request *r, int status, int killed, const char *prefix)
{
    drop_key(self(), r->key);
    if (killed) {
        printf("%s%s: killed\n", prefix, r->name);
        return;
    }
    int gone = (int)op_first(svc_call(&unload_op, r->handle, 0, 0, 0));
    if (status == PSY_ENOVP)
        printf("%s%s: stopped\n", prefix, r->name);
    else if (status || *prefix)
        printf("%s%s: exit %d\n", prefix, r->name, status);
    if (gone)
        printf("run: unloading %s: %s\n", r->name, error_name(gone));
}

/* A job's VP starts here: it calls the program's main and ends when that returns. */
static void job_start(uint32_t kind, uint32_t id)
{
    (void)kind, (void)id;
    struct job *j = (struct job *)self_vp();
    struct load_request *r = j->req;
    int status = ((main_op)r->main)(r->argc, r->argv);
    char prefix[8] = "[0] ";
    prefix[1] = (char)('0' + (j - jobs));
    finished(r, status, j->state == JOB_KILLED, prefix);
    j->state = JOB_FREE;
    destroy_vp(j->vp.id);
}

static void background(char *args, uint32_t node)
{
    struct job *j = 0;
    for (uint32_t i = 0; i < JOBS && !j; i++)
        if (jobs[i].state == JOB_FREE)
            j = &jobs[i];
    if (!j) {
        printf("run: %u jobs run already\n", JOBS);
        return;
    }
    j->req = (struct load_request *)((uint8_t *)req + PSY_PAGE_SIZE * (uint32_t)(1 + (j - jobs)));
    if (load(j->req, args, node))
        return;
    hold_key(self(), j->req->key);
    memset(&j->vp, 0, sizeof j->vp);
    j->vp.magic = PSY_VP_MAGIC;
    j->vp.handler[PSY_SWI_INIT] = (uint32_t)job_start;
    j->vp.init_sp = (uint32_t)j->stack + sizeof j->stack;
    j->state = JOB_RUNNING;
    int vp = create_vp(0, magic_page()->node, &j->vp);
    if (vp < 0) {
        printf("run: a VP for the job: %s\n", error_name(vp));
        j->state = JOB_KILLED;
        finished(j->req, 0, 0, "");
        j->state = JOB_FREE;
        return;
    }
    printf("[%u] %s\n", (uint32_t)(j - jobs), j->req->name);
}

static void run(char *args, int timed)
{
    uint32_t node = 0;
    args = skip_spaces(args);
    if (*args == '@') {
        char *rest;
        node = parse_number(word(args + 1, &rest));
        args = skip_spaces(rest);
    }
    uint32_t n = 0;
    while (args[n])
        n++;
    while (n && args[n - 1] == ' ')
        args[--n] = 0;
    int bg = n && args[n - 1] == '&';
    if (bg)
        args[--n] = 0;
    if (!*skip_spaces(args)) {
        printf("usage: run [@NODE] NAME [ARG ...] [&]\n");
        return;
    }
    if (bg) {
        background(args, node);
        return;
    }
    if (load(req, args, node))
        return;
    uint64_t loaded = rdtime64();
    hold_key(self(), req->key);
    int status = ((main_op)req->main)(req->argc, req->argv);
    if (timed)
        printf("time: %s loaded in %u cycles (%u of them in the loader), ran in %u\n", req->name,
               (uint32_t)(loaded - typed), req->cycles, (uint32_t)(rdtime64() - loaded));
    finished(req, status, 0, "");
}

static void list_jobs(void)
{
    for (uint32_t i = 0; i < JOBS; i++)
        if (jobs[i].state == JOB_RUNNING)
            printf("[%u] %s, domain %u, on node %u\n", i, jobs[i].req->name,
                   table->prog[jobs[i].req->handle].domain_id, jobs[i].req->node);
}

static void kill(char *args)
{
    char *rest;
    const char *w = word(args, &rest);
    uint32_t i = parse_number(w);
    if (!*w || i >= JOBS || jobs[i].state != JOB_RUNNING) {
        printf("kill: no job %s (jobs lists them)\n", w);
        return;
    }
    jobs[i].state = JOB_KILLED;           /* its VP says so when the call comes back */
    int err = (int)op_first(svc_call(&unload_op, jobs[i].req->handle, 0, 0, 0));
    if (err)
        printf("kill: %s\n", error_name(err));
}

static void programs(void)
{
    printf("  # name             node  domain  vp  by      realm\n");
    for (uint32_t i = 0; i < LOADED_MAX; i++) {
        const struct psy_program *p = &table->prog[i];
        if (p->domain)
            printf("%3u %-16s %4u %7u %3d  %-6s  %p +%x\n", i, p->name, p->node, p->domain_id, p->vp,
                   p->flags & PSY_PROGRAM_BOOT ? "init" : "loader", (void *)p->base, p->size);
    }
}

/* The kernel's map of the address space, as realm_info shows it to us. */
static void realms(void)
{
    static const char rights[] = "rwxio";
    struct psy_realm r;
    printf("  realm                     size  home  ops  access (keys we hold)\n");
    for (uint32_t va = PSY_USER_BASE; realm_next(va, &r) == 0; va = r.base + r.size) {
        printf("  %p-%p %5uK %5d %4u ", (void *)r.base, (void *)(r.base + r.size - 1), r.size / 1024,
               r.home, r.nops);
        for (uint32_t i = 0; i < r.nacl; i++) {
            char text[6];
            for (uint32_t b = 0; b < 5; b++)
                text[b] = r.acl[i].rights & (1u << b) ? rights[b] : '-';
            text[5] = 0;
            if (r.acl[i].key)
                printf(" %x:%s", r.acl[i].key, text);
            else
                printf(" %s", text);
        }
        printf("\n");
    }
}

static void domains(void)
{
    struct psy_domain_info d;
    printf("  domain  descriptor  vps  open  running\n");
    for (uint32_t id = 0; id < 64; id++)
        if (domain_info(id, &d) == 0)
            printf("  %6d  %p %4u %5u %8u\n", d.id, (void *)d.desc, d.vps, d.open, d.running);
}

static void vps(void)
{
    static const char *const states[] = { "free", "ready", "running", "blocked" };
    struct psy_vp_info v;
    printf("  vp  node  domain  state    descriptor  pending    cycles\n");
    for (uint32_t id = 0; id < PSY_MAX_VPS; id++)
        if (vp_info(id, &v) == 0)
            printf("  %2d  %4u  %6d  %-7s  %p  %7x %9u\n", v.id, v.node, v.domain,
                   v.state < 4 ? states[v.state] : "?", (void *)v.desc, v.pending, v.cycles);
}

static void services(void)
{
    for (uint32_t i = 0;; i++) {
        struct psy_name n;
        uint64_t r = 0;
        for (uint32_t w = 0; w < 4; w++) {
            r = svc_call(&entry_op, i, w, 0, 0);
            n.w[w] = op_first(r);
        }
        if ((int)n.w[0] == SVC_ENOENT && op_second(r) == 0)
            return;
        char text[PSY_NAME_MAX];
        memcpy(text, n.w, sizeof n.w);
        text[PSY_NAME_MAX - 1] = 0;
        printf("  %-16s %p\n", text, (void *)op_second(r));
    }
}

static void cat(char *args)
{
    char *rest;
    copy_text(files, word(args, &rest), 64);
    int n = (int)op_first(svc_call(&get_op, (uint32_t)files, (uint32_t)files, FILE_BUF, files_key));
    if (n < 0) {
        printf("cat: %s\n", files[0] ? files : error_name(n));
        return;
    }
    for (int at = 0; at < n; at += 1024)
        psy_call(PSY_PUTS, (uint32_t)files + (uint32_t)at, n - at < 1024 ? (uint32_t)(n - at) : 1024, 0, 0);
    if (n && files[n - 1] != '\n')
        printf("\n");
}

static void put(char *args)
{
    char *text;
    copy_text(files, word(args, &text), 64);
    uint32_t len = 0;
    while (text[len] && len < FILE_BUF - 128)
        len++;
    memcpy(files + 64, text, len);
    files[64 + len] = '\n';
    int n = (int)op_first(svc_call(&put_op, (uint32_t)files, (uint32_t)files + 64, len + 1, files_key));
    if (n < 0)
        printf("put: %s\n", error_name(n));
    else
        printf("put: %u bytes\n", (uint32_t)n);
}

static void help(void)
{
    static const char *const lines[] = {
        "run [@NODE] NAME [ARG ...]   load NAME from the file server and run it on NODE",
        "run ... &                    the same in the background: [J] NAME",
        "jobs, kill J                 the programs in the background; end one",
        "time run ...                 run, then say how long loading and running took",
        "programs                     what the loader has loaded",
        "services                     the name server's names",
        "realms, domains, vps         what the kernel shows every domain of them",
        "cat FILE, put FILE TEXT      read, write a file of the host's file server",
        "!COMMAND                     one kernel monitor command (!help lists them)",
        "!monitor                     give the console to the kernel monitor (`shell` there: back)",
    };
    for (uint32_t i = 0; i < sizeof lines / sizeof lines[0]; i++)
        printf("%s\n", lines[i]);
}

static void command(char *s)
{
    char *args;
    char *cmd = word(s, &args);
    if (!*cmd)
        return;
    if (strcmp(cmd, "run") == 0)
        run(args, 0);
    else if (strcmp(cmd, "jobs") == 0)
        list_jobs();
    else if (strcmp(cmd, "kill") == 0)
        kill(args);
    else if (strcmp(cmd, "time") == 0 && strcmp(word(args, &args), "run") == 0)
        run(args, 1);
    else if (strcmp(cmd, "programs") == 0)
        programs();
    else if (strcmp(cmd, "services") == 0)
        services();
    else if (strcmp(cmd, "realms") == 0)
        realms();
    else if (strcmp(cmd, "domains") == 0)
        domains();
    else if (strcmp(cmd, "vps") == 0)
        vps();
    else if (strcmp(cmd, "cat") == 0)
        cat(args);
    else if (strcmp(cmd, "put") == 0)
        put(args);
    else if (strcmp(cmd, "help") == 0)
        help();
    else if (strcmp(cmd, "exit") == 0)
        printf("sh: the shell stays; `!monitor` gives the console to the kernel monitor\n");
    else
        printf("sh: %s: no such command (help lists them)\n", cmd);
}

/* A line was typed: run every waiting one, then continue what we interrupted. */
static void on_console(uint32_t kind, uint32_t a1, uint32_t a2)
{
    (void)kind, (void)a1, (void)a2;
    struct psy_state back = _psy_vp.saved;
    for (;;) {
        int n = console_read(line, LINE_MAX);
        if (n < 0)
            break;
        line[n] = 0;
        typed = rdtime64();
        command(line);
        printf("psh> ");
    }
    _psy_vp.disabled = 0;
    psy_resume(&back);
}

static int share(uint32_t size, uint32_t *key)
{
    *key = new_key();
    hold_key(self(), *key);
    return make_realm(size, PSY_R | PSY_W, *key, 0);
}

int main(int argc, char **argv, struct psy_domain *me)
{
    (void)argc, (void)argv, (void)me;
    struct psy_link table_link;
    int r = share(PSY_PAGE_SIZE * (1 + JOBS), &req_key), f = share(FILE_BUF, &files_key);
    int err = r < 0 ? r : f < 0 ? f : svc_lookup("loader.load", &load_op);
    if (!err)
        err = svc_lookup("loader.unload", &unload_op);
    if (!err)
        err = svc_lookup("loader.table", &table_link);
    if (!err)
        err = svc_lookup("files.get", &get_op);
    if (!err)
        err = svc_lookup("files.put", &put_op);
    if (!err)
        err = svc_lookup("names.entry", &entry_op);
    if (!err)
        err = console_attach();
    if (err) {
        printf("sh: %s\n", error_name(err));
        return err;
    }
    req = (struct load_request *)r;
    files = (char *)f;
    table = (const struct loaded_table *)table_link.op;
    _psy_vp.handler[PSY_SWI_CONSOLE] = (uint32_t)on_console;
    printf("sh: ready on node %u; type `shell` at the monitor\n", magic_page()->node);
    return 0;
}
