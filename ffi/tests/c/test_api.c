/* Every function of the C ABI on one thread, with its error paths:
 * NULL arguments, missing keys, ownership across clear / remove / free,
 * snapshots, read sections, manual reclamation, statistics, and the
 * detection of a release below zero (in a child process). */
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "amap.h"
#include "check.h"

#define LIVE 0x5AFEC0DEu
#define DEAD 0xDEADDEADu

typedef struct {
    unsigned magic;
    int payload;
} item_t;

static atomic_int destroyed;

static void destroy_item(void *data, void *ctx) {
    item_t *item = data;
    CHECK(ctx == (void *)&destroyed);
    CHECK(item->magic == LIVE); /* never destroyed twice */
    item->magic = DEAD;
    free(item);
    atomic_fetch_add(&destroyed, 1);
}

static item_t *new_item(int payload) {
    item_t *item = malloc(sizeof *item);
    CHECK(item != NULL);
    item->magic = LIVE;
    item->payload = payload;
    return item;
}

static const uint8_t *K(const char *s) { return (const uint8_t *)s; }

static amap_status_t insert(amap_t *map, const char *key, int payload) {
    return amap_insert(map, K(key), strlen(key), new_item(payload), destroy_item, &destroyed);
}

/* amap_contains on a NUL-terminated key, checked to succeed: 1 if present, else 0 */
static int has(amap_t *map, const char *key) {
    uint8_t present = 2;
    CHECK_OK(amap_contains(map, K(key), strlen(key), &present));
    CHECK(present == 0 || present == 1);
    return present;
}

static int payload_of(const amap_value_t *v) {
    item_t *item = amap_value_data(v);
    CHECK(item != NULL && item->magic == LIVE);
    return item->payload;
}

typedef struct {
    int count;
    int sum;
} tally_t;

static amap_value_t *kept; /* retained from inside a callback */

static int32_t tally(const uint8_t *key, size_t key_len, const amap_value_t *value, void *user) {
    tally_t *t = user;
    item_t *item = amap_value_data(value);
    if (key_len == 1 && key[0] == 'a') {
        CHECK_OK(amap_value_retain(value));
        kept = (amap_value_t *)value;
    }
    CHECK(key != NULL || key_len == 0);
    CHECK(item->magic == LIVE);
    t->count++;
    t->sum += item->payload;
    return 0;
}

static int32_t stop_at_first(const uint8_t *key, size_t key_len, const amap_value_t *value, void *user) {
    (void)key, (void)key_len, (void)value;
    (*(int *)user)++;
    return 1;
}

static int32_t count_entries(const uint8_t *key, size_t key_len, void *data, void *user) {
    (void)key, (void)key_len, (void)data;
    (*(int *)user)++;
    return 0;
}

static void *use_read_elsewhere(void *read) {
    void *data = NULL;
    CHECK_STATUS(amap_read_get(read, K("a"), 1, &data), AMAP_WRONG_THREAD);
    size_t n = 0;
    uint8_t present = 0;
    uint64_t generation = 0;
    CHECK_STATUS(amap_read_len(read, &n), AMAP_WRONG_THREAD);
    CHECK_STATUS(amap_read_contains(read, K("a"), 1, &present), AMAP_WRONG_THREAD);
    CHECK_STATUS(amap_read_generation(read, &generation), AMAP_WRONG_THREAD);
    return NULL;
}

/* amap_get_with's callback: records the data it was called with, and that the
 * value was live during the call. */
typedef struct {
    int calls;
    void *data;
    int payload;
} visit_t;

static void record_visit(void *data, void *user) {
    visit_t *v = user;
    CHECK(((item_t *)data)->magic == LIVE);
    v->calls++;
    v->data = data;
    v->payload = ((item_t *)data)->payload;
}

/* A callback that writes to the map it reads (allowed: no lock is held). */
static void insert_from_visit(void *data, void *user) {
    (void)data;
    CHECK_OK(insert((amap_t *)user, "from-visit", 77));
}

static void null_arguments(amap_t *map) {
    size_t n;
    uint8_t present;
    amap_value_t *v;
    void *data;
    CHECK_STATUS(amap_insert(NULL, K("k"), 1, NULL, NULL, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_insert(map, NULL, 3, NULL, NULL, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_len(NULL, &n), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_len(map, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_capacity(NULL, &n), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_capacity(map, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_reserve(NULL, 10), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_shrink_to_fit(NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_contains(map, K("k"), 1, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_contains(NULL, K("k"), 1, &present), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_get(map, K("k"), 1, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_get(NULL, K("k"), 1, &v), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_remove(NULL, K("k"), 1), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_clear_async(NULL, NULL), AMAP_NULL_ARGUMENT);
    amap_ticket_t *ticket = (amap_ticket_t *)0x1;
    CHECK_STATUS(amap_clear_async(NULL, &ticket), AMAP_NULL_ARGUMENT);
    CHECK(ticket == (amap_ticket_t *)0x1);
    CHECK_STATUS(amap_ticket_wait(NULL, 0), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_ticket_is_reclaimed(NULL, &present), AMAP_NULL_ARGUMENT);
    uint64_t id;
    CHECK_STATUS(amap_ticket_id(NULL, &id), AMAP_NULL_ARGUMENT);
    amap_ticket_free(NULL);
    amap_batch_t *batch = NULL;
    CHECK_STATUS(amap_batch_new(NULL, &batch), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_batch_new(map, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_batch_insert(NULL, K("k"), 1, NULL, NULL, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_batch_len(NULL, &n), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_replace(map, NULL, NULL), AMAP_NULL_ARGUMENT);
    amap_batch_free(NULL);
    CHECK_STATUS(amap_read_for_each(NULL, count_entries, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_reclaim(NULL, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_stats(map, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_read_begin(NULL, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_read_get(NULL, K("k"), 1, &data), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_get_with(NULL, K("k"), 1, record_visit, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_get_with(map, K("k"), 1, NULL, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_get_with(map, NULL, 1, record_visit, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_snapshot(map, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_snapshot_get(NULL, K("k"), 1, &v), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_snapshot_len(NULL, &n), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_snapshot_foreach(NULL, tally, NULL), AMAP_NULL_ARGUMENT);
    uint64_t generation = 0;
    CHECK_STATUS(amap_snapshot_contains(NULL, K("k"), 1, &present), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_snapshot_generation(NULL, &generation), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_snapshot_read_begin(NULL, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_read_len(NULL, &n), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_read_contains(NULL, K("k"), 1, &present), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_read_generation(NULL, &generation), AMAP_NULL_ARGUMENT);
    amap_snapshot_t *s = NULL;
    CHECK_OK(amap_snapshot(map, &s));
    CHECK_STATUS(amap_snapshot_contains(s, NULL, 1, &present), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_snapshot_contains(s, K("k"), 1, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_snapshot_generation(s, NULL), AMAP_NULL_ARGUMENT);
    amap_snapshot_release(s);
    amap_read_t *r = NULL;
    CHECK_OK(amap_read_begin(map, &r));
    CHECK_STATUS(amap_read_len(r, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_read_contains(r, NULL, 1, &present), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_read_contains(r, K("k"), 1, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_read_generation(r, NULL), AMAP_NULL_ARGUMENT);
    amap_read_end(r);
    CHECK_STATUS(amap_value_retain(NULL), AMAP_NULL_ARGUMENT);
    CHECK_OK(amap_value_release(NULL));
    CHECK(amap_value_data(NULL) == NULL);
    CHECK_STATUS(amap_new_with(NULL, NULL), AMAP_NULL_ARGUMENT);
    /* A length no object can have is refused before any byte is read. */
    CHECK_STATUS(amap_insert(map, K("k"), SIZE_MAX, NULL, NULL, NULL), AMAP_INVALID_ARGUMENT);
    {
        /* An oversized shard count is refused, not an allocation that kills the
         * process; the bound itself is accepted. */
        amap_options_t big;
        amap_t *m = NULL;
        CHECK_OK(amap_options_init(&big));
        big.shards = (size_t)1 << 40;
        CHECK_STATUS(amap_new_with(&big, &m), AMAP_INVALID_ARGUMENT);
        CHECK(m == NULL);
        big.shards = AMAP_MAX_SHARDS + 1;
        CHECK_STATUS(amap_new_with(&big, &m), AMAP_INVALID_ARGUMENT);
        big.shards = AMAP_MAX_SHARDS;
        CHECK_OK(amap_new_with(&big, &m));
        amap_free(m);
    }
    CHECK_STATUS(amap_options_init(NULL), AMAP_NULL_ARGUMENT);
    amap_free(NULL);
    amap_read_end(NULL);
    amap_snapshot_release(NULL);
}

/* In a child: a value released once more than it was retained, while the epoch
 * still keeps it allocated, must abort with a message rather than corrupt memory. */
static void release_below_zero_aborts(void) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        amap_t *map = amap_new();
        amap_read_t *read;
        amap_value_t *v;
        CHECK_OK(insert(map, "x", 1));
        CHECK_OK(amap_read_begin(map, &read)); /* keeps freed cells allocated */
        CHECK_OK(amap_get(map, K("x"), 1, &v));
        CHECK_OK(amap_remove(map, K("x"), 1));
        CHECK_OK(amap_value_release(v)); /* the last reference: destruction deferred */
        amap_value_release(v);           /* one too many: must abort */
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

/* Runs `body` in a child whose stderr the parent reads, and checks that the child
 * aborted (SIGABRT) with `message` in what it wrote. */
static void aborts_with(void (*body)(void), const char *message) {
    int err[2];
    CHECK(pipe(err) == 0);
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        close(err[0]);
        dup2(err[1], 2);
        body();
        _exit(0);
    }
    close(err[1]);
    char buf[512] = {0};
    size_t len = 0;
    ssize_t got;
    while (len < sizeof buf - 1 && (got = read(err[0], buf + len, sizeof buf - 1 - len)) > 0)
        len += (size_t)got;
    close(err[0]);
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
    CHECK(strstr(buf, message) != NULL);
}

/* A value still mapped, released twice after one retain (the classic double
 * release). The second release must not take the table's own reference (which
 * would destroy a value a later amap_get still hands out): it aborts with a
 * message. */
static void release_twice_while_mapped(void) {
    amap_t *map = amap_new();
    amap_value_t *v;
    CHECK_OK(insert(map, "mapped", 1));
    CHECK_OK(amap_get(map, K("mapped"), 6, &v));
    CHECK_OK(amap_value_release(v)); /* gives back the reference amap_get took */
    amap_value_release(v);           /* one too many, while still mapped */
}

static void over_release_while_mapped_aborts(void) {
    aborts_with(release_twice_while_mapped, "released more times than retained");
}

/* ---- amap_read_for_each ---- */

typedef struct {
    amap_t *map;
    amap_read_t *read;
    int count;
    int stop_after;  /* 0: never */
    int sum;
    void *seen[64]; /* data pointers, kept past the callback (valid for the section) */
} walk_t;

/* Checks the entry, then writes to the map from inside the callback: removes the
 * key being visited and inserts "new" (no lock is held), and reads through the
 * same section. "new" goes to the section's own generation, so the walk may see
 * it: it is skipped. */
static int32_t walk_and_write(const uint8_t *key, size_t key_len, void *data, void *user) {
    walk_t *w = user;
    item_t *item = data;
    CHECK(item->magic == LIVE);
    CHECK(key_len == 3);
    if (memcmp(key, "new", 3) == 0) return 0;
    CHECK(key[0] == 'k' && (key[1] - '0') * 10 + (key[2] - '0') == item->payload);
    void *again = NULL;
    CHECK_OK(amap_read_get(w->read, key, key_len, &again));
    CHECK(again == data);
    CHECK_OK(amap_remove(w->map, key, key_len));
    CHECK_OK(insert(w->map, "new", 100));
    CHECK(w->count < 64);
    w->seen[w->count++] = data;
    return w->stop_after != 0 && w->count >= w->stop_after;
}

static int32_t nested_walk(const uint8_t *key, size_t key_len, void *data, void *user) {
    (void)key, (void)key_len, (void)data;
    walk_t *w = user;
    int inner = 0;
    CHECK_OK(amap_read_for_each(w->read, count_entries, &inner));
    CHECK(inner == 40);
    w->count++;
    return 0;
}

static void *walk_elsewhere(void *read) {
    int n = 0;
    CHECK_STATUS(amap_read_for_each(read, count_entries, &n), AMAP_WRONG_THREAD);
    CHECK(n == 0);
    return NULL;
}

static int32_t end_inside(const uint8_t *key, size_t key_len, void *data, void *user) {
    (void)key, (void)key_len, (void)data;
    amap_read_end(user); /* must abort: the walk still uses the section */
    return 0;
}

/* A map in manual mode (nothing is reclaimed until the test calls amap_reclaim). */
/* A map in manual mode if `manual`, else in background mode. */
static amap_t *new_map_in_mode(int manual) {
    amap_options_t options;
    CHECK_OK(amap_options_init(&options));
    options.reclaim_mode = manual ? AMAP_RECLAIM_MANUAL : AMAP_RECLAIM_BACKGROUND;
    amap_t *map = NULL;
    CHECK_OK(amap_new_with(&options, &map));
    CHECK(map != NULL);
    return map;
}

static amap_t *new_manual_map(void) { return new_map_in_mode(1); }

/* The pin of amap_get_with lasts until its callback returns: a value removed in
 * the callback is not destroyed before then, however many reclamation passes the
 * callback runs (manual mode, so each pass runs here); once the callback has
 * returned, the passes destroy it. */
static amap_t *pinned_map;
static int passes_in_visit;

static void remove_and_reclaim(void *data, void *user) {
    int destroyed_before = *(int *)user;
    CHECK_OK(amap_remove(pinned_map, K("pinned"), 6));
    for (passes_in_visit = 0; passes_in_visit < 200; passes_in_visit++) {
        CHECK_OK(amap_reclaim(pinned_map, NULL));
        if (atomic_load(&destroyed) != destroyed_before) break;
        usleep(500);
    }
    CHECK(atomic_load(&destroyed) == destroyed_before); /* not while pinned */
    CHECK(((item_t *)data)->magic == LIVE && ((item_t *)data)->payload == 61);
}

static void get_with_pins_through_the_callback(void) {
    amap_options_t options;
    CHECK_OK(amap_options_init(&options));
    options.reclaim_mode = AMAP_RECLAIM_MANUAL;
    CHECK_OK(amap_new_with(&options, &pinned_map));
    CHECK_OK(insert(pinned_map, "pinned", 61));
    int before = atomic_load(&destroyed);
    CHECK_OK(amap_get_with(pinned_map, K("pinned"), 6, remove_and_reclaim, &before));
    CHECK(passes_in_visit == 200);
    for (int i = 0; i < 1000 && atomic_load(&destroyed) == before; i++) {
        CHECK_OK(amap_reclaim(pinned_map, NULL));
        usleep(1000);
    }
    CHECK(atomic_load(&destroyed) == before + 1); /* unpinned: destroyed */
    amap_free(pinned_map);
}

/* A ticket wait in a read section begun before the clear could never end (the
 * section's pin holds up the teardown's grace period): it returns
 * AMAP_WOULD_DEADLOCK at once, whatever the timeout (here 60 s, so that a build
 * without the check fails rather than hangs), in both modes; once the section
 * ends, the wait succeeds. */
static void ticket_wait_in_an_older_read_section(void) {
    for (int manual = 0; manual <= 1; manual++) {
        amap_t *map = new_map_in_mode(manual);
        CHECK_OK(insert(map, "old", 1));
        amap_read_t *read = NULL;
        CHECK_OK(amap_read_begin(map, &read));
        amap_ticket_t *ticket = NULL;
        CHECK_OK(amap_clear_async(map, &ticket));
        CHECK_STATUS(amap_ticket_wait(ticket, 60000), AMAP_WOULD_DEADLOCK);
        CHECK_STATUS(amap_ticket_wait(ticket, -1), AMAP_WOULD_DEADLOCK);
        amap_read_end(read);
        CHECK_OK(amap_ticket_wait(ticket, 60000));
        amap_ticket_free(ticket);
        amap_free(map);
    }
}

/* A ticket wait in a callback that the ticket's own map runs under one of its
 * shard locks (amap_retain's keep, amap_compute's callback) could never end: the
 * release of the map's retired generations takes each of its shard locks first.
 * It returns AMAP_WOULD_DEADLOCK at once, whatever the timeout (60 s, so that a
 * build without the check fails rather than hangs), in both modes (since 0.8.1).
 * A snapshot keeps the ticket pending; once it is released, the wait succeeds. */
typedef struct {
    amap_ticket_t *ticket;
    int calls;
    amap_status_t statuses[4];
} own_wait_t;

static void wait_for_own_ticket(own_wait_t *w) {
    if (w->calls < 2) {
        w->statuses[2 * w->calls] = amap_ticket_wait(w->ticket, 60000);
        /* Without a limit only once refused with one (else it would hang). */
        if (w->statuses[2 * w->calls] == AMAP_WOULD_DEADLOCK)
            w->statuses[2 * w->calls + 1] = amap_ticket_wait(w->ticket, -1);
    }
    w->calls++;
}

static int32_t keep_and_wait(const uint8_t *key, size_t key_len, void *data, void *user) {
    (void)key;
    (void)key_len;
    (void)data;
    wait_for_own_ticket(user);
    return 1;
}

static int32_t keep_entry_and_wait(const void *current, uint8_t present, void *user,
                                   amap_new_value_t *out_new) {
    (void)current;
    (void)present;
    (void)out_new;
    wait_for_own_ticket(user);
    return AMAP_COMPUTE_KEEP;
}

static void ticket_wait_under_the_maps_own_lock(void) {
    for (int manual = 0; manual <= 1; manual++) {
        amap_t *map = new_map_in_mode(manual);
        CHECK_OK(insert(map, "old", 1));
        amap_snapshot_t *held = NULL;
        CHECK_OK(amap_snapshot(map, &held));
        own_wait_t w = {NULL, 0, {AMAP_OK, AMAP_OK, AMAP_OK, AMAP_OK}};
        CHECK_OK(amap_clear_async(map, &w.ticket));
        CHECK_OK(insert(map, "new", 2));
        CHECK_OK(amap_retain(map, keep_and_wait, &w, NULL));
        CHECK_OK(amap_compute(map, K("new"), 3, keep_entry_and_wait, &w, NULL));
        CHECK(w.calls == 2);
        for (int i = 0; i < 4; i++) CHECK_STATUS(w.statuses[i], AMAP_WOULD_DEADLOCK);
        amap_snapshot_release(held);
        CHECK_OK(amap_ticket_wait(w.ticket, 60000));
        amap_ticket_free(w.ticket);
        amap_free(map);
    }
}

/* amap_ticket_on_reclaimed (0.9.0): the callback runs once per registration,
 * after the teardown and never before (a snapshot holds the generation), even
 * with the ticket freed first; at once, on this thread, when the generation is
 * already torn down; on the reclaimer's thread in background mode. */
typedef struct {
    atomic_int runs;
    atomic_int torn_down_first; /* the teardown's flag was up when it ran */
    amap_ticket_t *ticket;      /* looked at from the callback, or NULL */
    pthread_t thread;
} reclaimed_t;

static void count_reclaimed(void *user) {
    reclaimed_t *r = user;
    if (r->ticket) {
        uint8_t done = 0;
        if (amap_ticket_is_reclaimed(r->ticket, &done) == AMAP_OK && done) atomic_fetch_add(&r->torn_down_first, 1);
    }
    r->thread = pthread_self();
    atomic_fetch_add(&r->runs, 1);
}

static void ticket_on_reclaimed(void) {
    amap_t *map = new_manual_map();
    CHECK_OK(insert(map, "old", 1));
    amap_snapshot_t *held = NULL;
    CHECK_OK(amap_snapshot(map, &held));
    amap_ticket_t *ticket = NULL;
    CHECK_OK(amap_clear_async(map, &ticket));
    reclaimed_t r = {0, 0, NULL, pthread_self()};
    CHECK_STATUS(amap_ticket_on_reclaimed(NULL, count_reclaimed, &r), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_ticket_on_reclaimed(ticket, NULL, &r), AMAP_NULL_ARGUMENT);
    /* Two registrations; a second ticket, kept, to look at from the callback. */
    amap_ticket_t *kept = NULL;
    CHECK_OK(amap_clear_async(map, &kept)); /* retires the empty generation after */
    CHECK_OK(amap_ticket_on_reclaimed(ticket, count_reclaimed, &r));
    CHECK_OK(amap_ticket_on_reclaimed(ticket, count_reclaimed, &r));
    amap_ticket_free(ticket); /* the registrations belong to the generation */
    CHECK_OK(amap_reclaim(map, NULL));
    CHECK(atomic_load(&r.runs) == 0); /* the snapshot holds the generation */
    amap_snapshot_release(held);
    for (int i = 0; i < 10000 && atomic_load(&r.runs) < 2; i++) {
        CHECK_OK(amap_reclaim(map, NULL));
        if (atomic_load(&r.runs) < 2) usleep(1000);
    }
    CHECK(atomic_load(&r.runs) == 2 && pthread_equal(r.thread, pthread_self()));

    /* Already torn down: at once, before the call returns; the flag is up. */
    CHECK_OK(amap_ticket_wait(kept, 60000));
    r.ticket = kept;
    CHECK_OK(amap_ticket_on_reclaimed(kept, count_reclaimed, &r));
    CHECK(atomic_load(&r.runs) == 3 && atomic_load(&r.torn_down_first) == 1);
    amap_ticket_free(kept);
    amap_free(map);

    /* Background: run by the reclaimer's thread, after the teardown. */
    amap_t *background = amap_new();
    CHECK(background != NULL);
    CHECK_OK(insert(background, "old", 1));
    CHECK_OK(amap_clear_async(background, &ticket));
    reclaimed_t b = {0, 0, ticket, pthread_self()};
    CHECK_OK(amap_ticket_on_reclaimed(ticket, count_reclaimed, &b));
    for (int i = 0; i < 10000 && atomic_load(&b.runs) == 0; i++) usleep(1000);
    CHECK(atomic_load(&b.runs) == 1 && atomic_load(&b.torn_down_first) == 1);
    CHECK(!pthread_equal(b.thread, pthread_self()));
    amap_ticket_free(ticket);
    amap_free(background);
}

static void read_iteration(void) {
    amap_t *map = new_manual_map();
    int before = atomic_load(&destroyed);
    for (int i = 0; i < 40; i++) {
        char key[4] = {'k', (char)('0' + i / 10), (char)('0' + i % 10), 0};
        CHECK_OK(insert(map, key, i));
    }

    walk_t w = {.map = map};
    CHECK_OK(amap_read_begin(map, &w.read));
    int n = 0;
    CHECK_OK(amap_read_for_each(w.read, count_entries, &n));
    CHECK(n == 40);
    CHECK_STATUS(amap_read_for_each(w.read, NULL, NULL), AMAP_NULL_ARGUMENT);
    pthread_t other;
    CHECK(pthread_create(&other, NULL, walk_elsewhere, w.read) == 0);
    CHECK(pthread_join(other, NULL) == 0);
    CHECK_OK(amap_read_for_each(w.read, nested_walk, &w)); /* a walk inside a walk */
    CHECK(w.count == 40);

    /* writes from the callback; stops at the first non-zero return */
    w.count = 0, w.stop_after = 3;
    CHECK_OK(amap_read_for_each(w.read, walk_and_write, &w));
    CHECK(w.count == 3);
    n = 0;
    CHECK_OK(amap_read_for_each(w.read, count_entries, &n));
    CHECK(n == 38); /* 3 removed, "new" added: the section's generation is the current one */

    /* after a clear the section still walks its own generation; every pointer it
     * handed out stays valid until it ends, across the removes, the clear and
     * reclamation passes */
    CHECK_OK(amap_clear_async(map, NULL));
    CHECK_OK(insert(map, "k99", 99)); /* in the new generation: never seen */
    n = 0;
    CHECK_OK(amap_read_for_each(w.read, count_entries, &n));
    CHECK(n == 38);
    CHECK_OK(amap_reclaim(map, NULL));
    CHECK_OK(amap_reclaim(map, NULL));
    for (int i = 0; i < 3; i++) CHECK(((item_t *)w.seen[i])->magic == LIVE);
    CHECK(atomic_load(&destroyed) == before);
    amap_read_end(w.read);

    amap_free(map);
    amap_t *driver = amap_new();
    for (int i = 0; i < 1000 && atomic_load(&destroyed) < before + 44; i++) {
        CHECK_OK(amap_reclaim(driver, NULL));
        usleep(1000);
    }
    amap_free(driver);
    CHECK(atomic_load(&destroyed) == before + 44); /* 40, "new" 3 times, k99 */
}

/* In a child: ending a section from a callback of a walk on it aborts. */
static void read_end_inside_walk_aborts(void) {
    pid_t pid = fork();
    CHECK(pid >= 0);
    if (pid == 0) {
        amap_t *map = amap_new();
        amap_read_t *read;
        CHECK_OK(amap_insert(map, K("x"), 1, NULL, NULL, NULL));
        CHECK_OK(amap_read_begin(map, &read));
        amap_read_for_each(read, end_inside, read);
        _exit(0);
    }
    int status = 0;
    CHECK(waitpid(pid, &status, 0) == pid);
    CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT);
}

/* A section used and ended again after it ended (a broken contract, caught while
 * its allocation waits as the thread's spare for the next section): the lookup is
 * refused and the second end aborts with a message, where the dropped section
 * would otherwise be read and its epoch pin dropped twice. */
static void end_a_section_twice(void) {
    amap_t *map = amap_new();
    amap_read_t *section;
    void *data = NULL;
    CHECK_OK(amap_insert(map, K("x"), 1, NULL, NULL, NULL));
    CHECK_OK(amap_read_begin(map, &section));
    amap_read_end(section);
    CHECK_STATUS(amap_read_get(section, K("x"), 1, &data), AMAP_WRONG_THREAD);
    amap_read_end(section); /* again: must abort */
}

static void read_end_twice_aborts(void) {
    aborts_with(end_a_section_twice, "on a section already ended");
}

/* ---- batches and amap_replace ---- */

static void batch_and_replace(void) {
    amap_t *map = new_manual_map(), *other = new_manual_map();
    int before = atomic_load(&destroyed);
    CHECK_OK(insert(map, "old", 1));

    amap_batch_t *batch = NULL;
    CHECK_OK(amap_batch_new(map, &batch));
    CHECK_OK(amap_batch_insert(batch, K("a"), 1, new_item(10), destroy_item, &destroyed));
    CHECK_OK(amap_batch_insert(batch, K("b"), 1, new_item(20), destroy_item, &destroyed));
    CHECK_OK(amap_batch_insert(batch, K("a"), 1, new_item(11), destroy_item, &destroyed)); /* wins */
    CHECK_OK(amap_batch_insert(batch, NULL, 0, new_item(0), destroy_item, &destroyed)); /* the empty key */
    item_t *refused = new_item(-1);
    CHECK_STATUS(amap_batch_insert(batch, NULL, 2, refused, destroy_item, &destroyed), AMAP_NULL_ARGUMENT);
    free(refused); /* not taken */
    size_t n = 0;
    CHECK_OK(amap_batch_len(batch, &n));
    CHECK(n == 4);
    CHECK_STATUS(amap_batch_len(batch, NULL), AMAP_NULL_ARGUMENT);
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 1); /* nothing visible before the replace */

    amap_value_t *old = NULL;
    CHECK_OK(amap_get(map, K("old"), 3, &old));
    amap_ticket_t *ticket = NULL;
    CHECK_OK(amap_replace(map, batch, &ticket)); /* consumes the batch */
    uint64_t id = 99;
    CHECK_OK(amap_ticket_id(ticket, &id));
    CHECK(id == 0);
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 3);
    amap_value_t *a = NULL;
    CHECK_OK(amap_get(map, K("a"), 1, &a));
    CHECK(payload_of(a) == 11);
    CHECK_OK(amap_value_release(a));
    CHECK_STATUS(amap_get(map, K("old"), 3, &a), AMAP_NOT_FOUND);
    CHECK(payload_of(old) == 1); /* a retained value survives the reload */

    /* the retired generation is reclaimed by a pass; "old" is still retained */
    CHECK_STATUS(amap_ticket_wait(ticket, 0), AMAP_OK); /* manual mode: the wait runs a pass */
    amap_ticket_free(ticket);
    CHECK_OK(amap_value_release(old));

    /* an unpublished batch: its destructors run at once, on this thread */
    int now = atomic_load(&destroyed);
    CHECK_OK(amap_batch_new(map, &batch));
    CHECK_OK(amap_batch_insert(batch, K("x"), 1, new_item(1), destroy_item, &destroyed));
    CHECK_OK(amap_batch_insert(batch, K("y"), 1, new_item(2), destroy_item, &destroyed));
    amap_batch_free(batch);
    CHECK(atomic_load(&destroyed) == now + 2);

    /* a failed replace consumes the batch too, and writes no ticket */
    CHECK_OK(amap_batch_new(map, &batch));
    CHECK_OK(amap_batch_insert(batch, K("x"), 1, new_item(1), destroy_item, &destroyed));
    ticket = (amap_ticket_t *)0x1;
    CHECK_STATUS(amap_replace(NULL, batch, &ticket), AMAP_NULL_ARGUMENT);
    CHECK(atomic_load(&destroyed) == now + 3);
    CHECK_OK(amap_batch_new(map, &batch));
    CHECK_OK(amap_batch_insert(batch, K("x"), 1, new_item(1), destroy_item, &destroyed));
    CHECK_STATUS(amap_replace(other, batch, &ticket), AMAP_INVALID_ARGUMENT); /* another map's */
    CHECK(atomic_load(&destroyed) == now + 4);
    CHECK(ticket == (amap_ticket_t *)0x1);
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 3);

    /* an empty batch is a clear; no ticket wanted */
    CHECK_OK(amap_batch_new(map, &batch));
    CHECK_OK(amap_replace(map, batch, NULL));
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 0);
    amap_stats_t stats;
    clear_and_drain(map, 10000, &stats);
    CHECK(stats.generation == 3);
    amap_free(map);
    amap_free(other);
    /* "old", a(10), a(11), b, "", and the 4 of the unpublished batches */
    CHECK(atomic_load(&destroyed) == before + 9);
}

/* ---- tickets waited on from inside a destructor ---- */

static _Atomic(amap_ticket_t *) own_ticket;
static atomic_int waited_inside;
static amap_status_t inside_status[2];
static double inside_ms[2];

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

/* Waits for the teardown that is running it: without limit, then with a limit. */
static void destroy_waiting(void *data, void *ctx) {
    (void)data, (void)ctx;
    amap_ticket_t *ticket = atomic_load(&own_ticket);
    CHECK(ticket != NULL);
    double start = now_ms();
    inside_status[0] = amap_ticket_wait(ticket, -1);
    inside_status[1] = amap_ticket_wait(ticket, 5000);
    inside_ms[0] = now_ms() - start;
    atomic_fetch_add(&waited_inside, 1);
}

static void ticket_wait_inside_destructor(void) {
    for (uint32_t mode = AMAP_RECLAIM_BACKGROUND; mode <= AMAP_RECLAIM_MANUAL; mode++) {
        amap_options_t options;
        CHECK_OK(amap_options_init(&options));
        options.reclaim_mode = mode;
        amap_t *map = NULL;
        CHECK_OK(amap_new_with(&options, &map));
        atomic_store(&waited_inside, 0);
        CHECK_OK(amap_insert(map, K("w"), 1, NULL, destroy_waiting, NULL));
        /* the snapshot holds the generation until the ticket is published below */
        amap_snapshot_t *snap = NULL;
        CHECK_OK(amap_snapshot(map, &snap));
        amap_ticket_t *ticket = NULL;
        CHECK_OK(amap_clear_async(map, &ticket));
        atomic_store(&own_ticket, ticket);
        amap_snapshot_release(snap);
        /* from outside a destructor: waits until the teardown, which runs the
         * destructor (on this thread in manual mode) */
        CHECK_OK(amap_ticket_wait(ticket, -1));
        CHECK(atomic_load(&waited_inside) == 1);
        CHECK(inside_status[0] == AMAP_WOULD_DEADLOCK && inside_status[1] == AMAP_WOULD_DEADLOCK);
        CHECK(inside_ms[0] < 1000.0); /* returned at once, twice */
        amap_free(map);
        /* the ticket outlives the map */
        uint8_t reclaimed = 0;
        CHECK_OK(amap_ticket_is_reclaimed(ticket, &reclaimed));
        CHECK(reclaimed == 1);
        CHECK_OK(amap_ticket_wait(ticket, 0));
        atomic_store(&own_ticket, NULL);
        amap_ticket_free(ticket);
    }
}

/* A destructor that calls back into the map it belongs to. */
static amap_t *reentrant_map;
static atomic_int reentrant_calls;

static void destroy_reentrant(void *data, void *ctx) {
    (void)data, (void)ctx;
    (void)has(reentrant_map, "re"); /* a read from a destructor: allowed */
    CHECK_OK(amap_insert(reentrant_map, K("re"), 2, NULL, NULL, NULL));
    amap_value_t *v = NULL;
    CHECK_OK(amap_get(reentrant_map, K("re"), 2, &v));
    CHECK_OK(amap_value_release(v));
    atomic_fetch_add(&reentrant_calls, 1);
}

static void bad_input_and_reentrancy(void) {
    /* a 1 MiB key, and values with no destructor */
    amap_t *map = amap_new();
    size_t big = 1u << 20;
    uint8_t *key = malloc(big);
    CHECK(key != NULL);
    memset(key, 0xab, big);
    CHECK_OK(amap_insert(map, key, big, (void *)0x1234, NULL, NULL));
    amap_value_t *v = NULL;
    CHECK_OK(amap_get(map, key, big, &v));
    CHECK(amap_value_data(v) == (void *)0x1234);
    CHECK_OK(amap_value_release(v));
    key[big - 1] = 0; /* a different key of the same length */
    CHECK_STATUS(amap_get(map, key, big, &v), AMAP_NOT_FOUND);
    key[big - 1] = 0xab;
    CHECK_OK(amap_remove(map, key, big));
    free(key);

    /* amap_free while a read section, a snapshot and a retained value are live */
    CHECK_OK(insert(map, "live", 42));
    amap_read_t *read = NULL;
    amap_snapshot_t *snap = NULL;
    CHECK_OK(amap_read_begin(map, &read));
    CHECK_OK(amap_snapshot(map, &snap));
    CHECK_OK(amap_get(map, K("live"), 4, &v));
    int before = atomic_load(&destroyed);
    amap_free(map);
    void *data = NULL;
    CHECK_OK(amap_read_get(read, K("live"), 4, &data));
    CHECK(((item_t *)data)->payload == 42);
    amap_value_t *from_snap = NULL;
    CHECK_OK(amap_snapshot_get(snap, K("live"), 4, &from_snap));
    CHECK(payload_of(from_snap) == 42 && payload_of(v) == 42);
    amap_read_end(read);
    amap_snapshot_release(snap);
    CHECK_OK(amap_value_release(from_snap));
    CHECK(atomic_load(&destroyed) == before);
    CHECK_OK(amap_value_release(v));

    /* destructors that call back into their own map, in both reclaim modes */
    for (uint32_t mode = AMAP_RECLAIM_BACKGROUND; mode <= AMAP_RECLAIM_MANUAL; mode++) {
        amap_options_t options;
        CHECK_OK(amap_options_init(&options));
        options.reclaim_mode = mode;
        CHECK_OK(amap_new_with(&options, &reentrant_map));
        atomic_store(&reentrant_calls, 0);
        for (int i = 0; i < 8; i++) {
            uint8_t k = (uint8_t)i;
            CHECK_OK(amap_insert(reentrant_map, &k, 1, NULL, destroy_reentrant, NULL));
        }
        CHECK_OK(amap_remove(reentrant_map, (const uint8_t *)"\0", 1)); /* a doomed value */
        amap_ticket_t *ticket = NULL;
        CHECK_OK(amap_clear_async(reentrant_map, &ticket)); /* a retired generation */
        CHECK_OK(amap_ticket_wait(ticket, 10000));
        amap_ticket_free(ticket);
        for (int i = 0; i < 10000 && atomic_load(&reentrant_calls) < 8; i++) {
            CHECK_OK(amap_reclaim(reentrant_map, NULL));
            usleep(1000);
        }
        CHECK(atomic_load(&reentrant_calls) == 8);
        CHECK(has(reentrant_map, "re"));
        amap_free(reentrant_map);
    }
}

/* Reclaims a manual map until `destroyed` reaches `expected` (checked), for at most
 * about a second. */
static void reclaim_until_destroyed(amap_t *map, int expected) {
    for (int i = 0; i < 1000 && atomic_load(&destroyed) < expected; i++) {
        CHECK_OK(amap_reclaim(map, NULL));
        usleep(1000);
    }
    CHECK(atomic_load(&destroyed) == expected);
}

/* The conditional writes: insert only if absent, remove and hand over, remove only
 * if the key still maps to a given value; and an insert that hands over the value
 * it replaced. Each is one step with respect to other
 * writers of the key, so a caller never replaces or removes a value it did not
 * see; ownership of the value passed in stays with the caller when nothing is
 * inserted. */
static void conditional_writes(void) {
    amap_t *map = new_manual_map();
    int before = atomic_load(&destroyed);
    CHECK(strcmp(amap_status_str(AMAP_EXISTS), "the key is already in the map") == 0);

    /* amap_try_insert: absent, so inserted; the handle is on the new value */
    amap_value_t *first = NULL;
    CHECK_OK(amap_try_insert(map, K("k"), 1, new_item(1), destroy_item, &destroyed, &first));
    CHECK(first != NULL && payload_of(first) == 1);
    /* present: nothing inserted, the handle is on the value already there, and the
     * item offered stays the caller's (its destructor is never called) */
    item_t *refused = new_item(2);
    amap_value_t *current = (amap_value_t *)0x1;
    CHECK_STATUS(amap_try_insert(map, K("k"), 1, refused, destroy_item, &destroyed, &current),
                 AMAP_EXISTS);
    CHECK(current == first && payload_of(current) == 1);
    CHECK_OK(amap_value_release(current));
    CHECK_STATUS(amap_try_insert(map, K("k"), 1, refused, destroy_item, &destroyed, NULL), AMAP_EXISTS);
    CHECK(refused->magic == LIVE);
    /* no out-parameter: inserted all the same; the empty key too */
    CHECK_OK(amap_try_insert(map, K("j"), 1, new_item(3), destroy_item, &destroyed, NULL));
    CHECK_OK(amap_try_insert(map, NULL, 0, new_item(4), destroy_item, &destroyed, NULL));
    size_t n = 0;
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 3);

    /* amap_remove_if_same: a stale handle removes nothing */
    CHECK_OK(insert(map, "k", 5)); /* replaces 1, which `first` still holds */
    CHECK_STATUS(amap_remove_if_same(map, K("k"), 1, first), AMAP_NOT_FOUND);
    amap_value_t *fresh = NULL;
    CHECK_OK(amap_get(map, K("k"), 1, &fresh));
    CHECK(payload_of(fresh) == 5);
    CHECK_STATUS(amap_remove_if_same(map, K("absent"), 6, fresh), AMAP_NOT_FOUND);
    CHECK_STATUS(amap_remove_if_same(map, K("k"), 1, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_remove_if_same(NULL, K("k"), 1, fresh), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_remove_if_same(map, NULL, 1, fresh), AMAP_NULL_ARGUMENT);
    /* the value the key maps to: removed; the handle still holds it */
    CHECK_OK(amap_remove_if_same(map, K("k"), 1, fresh));
    CHECK(!has(map, "k"));
    CHECK(payload_of(fresh) == 5);
    CHECK_STATUS(amap_remove_if_same(map, K("k"), 1, fresh), AMAP_NOT_FOUND);

    /* amap_take: the removed value, handed over */
    amap_value_t *taken = (amap_value_t *)0x1;
    CHECK_STATUS(amap_take(map, K("k"), 1, &taken), AMAP_NOT_FOUND);
    CHECK(taken == (amap_value_t *)0x1);
    CHECK_STATUS(amap_take(map, K("j"), 1, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_take(NULL, K("j"), 1, &taken), AMAP_NULL_ARGUMENT);
    CHECK_OK(amap_take(map, K("j"), 1, &taken));
    CHECK(payload_of(taken) == 3);
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 1);

    /* amap_swap: inserts, and hands over the value it replaced (NULL if the key was
     * absent); with a bad argument the map takes nothing */
    amap_value_t *previous = (amap_value_t *)0x1;
    CHECK_STATUS(amap_swap(map, K("s"), 1, refused, destroy_item, &destroyed, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_swap(NULL, K("s"), 1, refused, destroy_item, &destroyed, &previous),
                 AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_swap(map, NULL, 1, refused, destroy_item, &destroyed, &previous), AMAP_NULL_ARGUMENT);
    CHECK(previous == (amap_value_t *)0x1 && refused->magic == LIVE && !has(map, "s"));
    CHECK_OK(amap_swap(map, K("s"), 1, new_item(6), destroy_item, &destroyed, &previous));
    CHECK(previous == NULL);
    CHECK_OK(amap_swap(map, K("s"), 1, new_item(7), destroy_item, &destroyed, &previous));
    CHECK(previous != NULL && payload_of(previous) == 6);
    amap_value_t *swapped_in = NULL;
    CHECK_OK(amap_get(map, K("s"), 1, &swapped_in));
    CHECK(payload_of(swapped_in) == 7);
    CHECK_OK(amap_value_release(swapped_in));
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 2);

    /* nothing held is destroyed, however many passes run */
    CHECK_OK(amap_reclaim(map, NULL));
    CHECK_OK(amap_reclaim(map, NULL));
    CHECK(atomic_load(&destroyed) == before);
    CHECK(payload_of(first) == 1 && payload_of(fresh) == 5 && payload_of(taken) == 3);
    CHECK(payload_of(previous) == 6);
    /* each released value is destroyed once: 1, 5, 3, 6, then the empty key's 4 and
     * the swapped-in 7 */
    CHECK_OK(amap_value_release(first));
    CHECK_OK(amap_value_release(fresh));
    CHECK_OK(amap_value_release(taken));
    CHECK_OK(amap_value_release(previous));
    reclaim_until_destroyed(map, before + 4);
    CHECK_OK(amap_clear_async(map, NULL));
    reclaim_until_destroyed(map, before + 6);
    amap_free(map);
    CHECK(atomic_load(&destroyed) == before + 6);
    destroy_item(refused, &destroyed); /* the caller's all along */
}

/* amap_compute's callback: what `op` says, with a new item whose payload is one
 * more than the current one's (1 if absent) for AMAP_COMPUTE_INSERT; checks the
 * current value it is lent and that reads of the same map work from inside. */
typedef struct {
    amap_t *map;
    int32_t op;
    int calls;
    int seen;          /* the current payload, or -1 if absent */
    item_t *offered;   /* what the last call put in *out_new */
} compute_t;

static int32_t bump(const void *current, uint8_t present, void *user, amap_new_value_t *out_new) {
    compute_t *c = user;
    c->calls++;
    CHECK(out_new != NULL && out_new->data == NULL && out_new->dtor == NULL && out_new->ctx == NULL);
    CHECK(present == (current != NULL));
    c->seen = -1;
    if (present) {
        const item_t *item = current;
        CHECK(item->magic == LIVE);
        c->seen = item->payload;
        /* a read of the same map, under the shard's lock: allowed */
        amap_value_t *v = NULL;
        CHECK_OK(amap_get(c->map, K("c"), 1, &v));
        CHECK(amap_value_data(v) == current);
        CHECK_OK(amap_value_release(v));
    }
    c->offered = new_item(c->seen < 0 ? 1 : c->seen + 1);
    out_new->data = c->offered;
    out_new->dtor = destroy_item;
    out_new->ctx = &destroyed;
    return c->op;
}

/* A read-modify-write of one entry: insert when absent, update from the current
 * value, keep, remove; an unknown answer changes nothing and takes nothing; the
 * values replaced or removed are released (holders keep them), each destroyed
 * once. */
static void compute_writes(void) {
    amap_t *map = new_manual_map();
    int before = atomic_load(&destroyed);
    compute_t c = {map, AMAP_COMPUTE_INSERT, 0, 0, NULL};

    CHECK_STATUS(amap_compute(NULL, K("c"), 1, bump, &c, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_compute(map, NULL, 1, bump, &c, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_compute(map, K("c"), 1, NULL, &c, NULL), AMAP_NULL_ARGUMENT);
    CHECK(c.calls == 0); /* rejected before the callback */

    /* absent: inserted; the out-parameter holds the value now mapped */
    amap_value_t *first = NULL;
    CHECK_OK(amap_compute(map, K("c"), 1, bump, &c, &first));
    CHECK(c.calls == 1 && c.seen == -1 && payload_of(first) == 1);
    /* present: updated from the current value; the old one stays with its holder */
    CHECK_OK(amap_compute(map, K("c"), 1, bump, &c, NULL));
    amap_value_t *second = NULL;
    CHECK_OK(amap_compute(map, K("c"), 1, bump, &c, &second));
    CHECK(c.calls == 3 && c.seen == 2 && payload_of(second) == 3 && payload_of(first) == 1);

    /* keep: the very same value stays mapped; the item offered stays the caller's */
    c.op = AMAP_COMPUTE_KEEP;
    amap_value_t *kept = NULL;
    CHECK_OK(amap_compute(map, K("c"), 1, bump, &c, &kept));
    CHECK(kept == second);
    destroy_item(c.offered, &destroyed);

    /* an unknown answer: nothing changes, nothing is taken, the out-parameter is
     * left alone */
    c.op = 7;
    amap_value_t *untouched = (amap_value_t *)0x1;
    CHECK_STATUS(amap_compute(map, K("c"), 1, bump, &c, &untouched), AMAP_INVALID_ARGUMENT);
    CHECK(untouched == (amap_value_t *)0x1);
    CHECK(c.offered->magic == LIVE);
    destroy_item(c.offered, &destroyed);
    amap_value_t *now = NULL;
    CHECK_OK(amap_get(map, K("c"), 1, &now));
    CHECK(now == second);
    CHECK_OK(amap_value_release(now));

    /* remove: unmapped, the out-parameter says absent; again on the absent key */
    c.op = AMAP_COMPUTE_REMOVE;
    amap_value_t *gone = (amap_value_t *)0x1;
    CHECK_OK(amap_compute(map, K("c"), 1, bump, &c, &gone));
    CHECK(gone == NULL && c.seen == 3 && !has(map, "c"));
    destroy_item(c.offered, &destroyed);
    CHECK_OK(amap_compute(map, K("c"), 1, bump, &c, &gone));
    CHECK(gone == NULL && c.seen == -1);
    destroy_item(c.offered, &destroyed);

    /* the four callbacks' own items (kept, unknown, two removes) were destroyed
     * here; of the map's three values (1, 2, 3), 2 is held by no one */
    reclaim_until_destroyed(map, before + 4 + 1);
    CHECK(payload_of(first) == 1 && payload_of(second) == 3 && payload_of(kept) == 3);
    CHECK_OK(amap_value_release(first));
    CHECK_OK(amap_value_release(second));
    reclaim_until_destroyed(map, before + 4 + 2);
    CHECK_OK(amap_value_release(kept));
    reclaim_until_destroyed(map, before + 4 + 3);
    amap_free(map);
}

/* amap_retain's callback: keeps the items whose payload is even, and checks that
 * reads of the same map work from inside (a write would wait for itself). */
typedef struct {
    amap_t *map;
    int visits;
} evict_t;

static int32_t keep_even(const uint8_t *key, size_t key_len, void *data, void *user) {
    evict_t *e = user;
    item_t *item = data;
    CHECK(item->magic == LIVE);
    CHECK(key_len == 2 && key[0] == 'e');
    /* reads of the same map, under the shard's lock: each documented as allowed */
    uint8_t present = 0;
    CHECK_OK(amap_contains(e->map, key, key_len, &present));
    CHECK(present == 1);
    amap_value_t *v = NULL;
    CHECK_OK(amap_get(e->map, key, key_len, &v));
    CHECK(amap_value_data(v) == data);
    CHECK_OK(amap_value_release(v));
    amap_snapshot_t *snap = NULL;
    CHECK_OK(amap_snapshot(e->map, &snap));
    amap_snapshot_release(snap);
    amap_read_t *read = NULL;
    CHECK_OK(amap_read_begin(e->map, &read));
    void *borrowed = NULL;
    CHECK_OK(amap_read_get(read, key, key_len, &borrowed));
    CHECK(borrowed == data);
    amap_read_end(read);
    e->visits++;
    return item->payload % 2 == 0;
}

/* Eviction in one call: the entries the callback refuses are removed (released as
 * by amap_remove: a holder keeps its value), the others stay. */
static void eviction(void) {
    amap_t *map = new_manual_map();
    int before = atomic_load(&destroyed);
    for (int i = 0; i < 10; i++) {
        char key[3] = {'e', (char)('0' + i), 0};
        CHECK_OK(insert(map, key, i));
    }
    amap_value_t *held = NULL;
    CHECK_OK(amap_get(map, K("e3"), 2, &held)); /* odd: evicted, but held */
    CHECK_STATUS(amap_retain(NULL, keep_even, NULL, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_retain(map, NULL, NULL, NULL), AMAP_NULL_ARGUMENT);
    evict_t e = {map, 0};
    size_t removed = 0;
    CHECK_OK(amap_retain(map, keep_even, &e, &removed));
    CHECK(e.visits == 10 && removed == 5);
    size_t n = 0;
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 5);
    CHECK(!has(map, "e3"));
    CHECK(has(map, "e4"));
    e.visits = 0;
    CHECK_OK(amap_retain(map, keep_even, &e, NULL)); /* nothing left to evict */
    CHECK(e.visits == 5);
    reclaim_until_destroyed(map, before + 4); /* the four odd ones no one holds */
    CHECK(payload_of(held) == 3);
    CHECK_OK(amap_value_release(held));
    reclaim_until_destroyed(map, before + 5);
    amap_free(map);
    amap_t *driver = amap_new();
    for (int i = 0; i < 1000 && atomic_load(&destroyed) < before + 10; i++) {
        CHECK_OK(amap_reclaim(driver, NULL));
        usleep(1000);
    }
    amap_free(driver);
    CHECK(atomic_load(&destroyed) == before + 10);
}

/* amap_retain's callback for `sizing`: keeps the items of payload under ten. */
static int32_t keep_below_ten(const uint8_t *key, size_t key_len, void *data, void *user) {
    (void)key, (void)key_len, (void)user;
    return ((item_t *)data)->payload < 10;
}

/* amap_reserve makes room that a fill then uses without growing any shard;
 * amap_shrink_to_fit gives back what an eviction left, values and holders
 * untouched; a reservation past memory is refused and changes nothing; a clear's
 * generation starts empty. */
static void sizing(void) {
    amap_t *map = new_manual_map();
    int before = atomic_load(&destroyed);
    size_t capacity = 1;
    CHECK_OK(amap_capacity(map, &capacity));
    CHECK(capacity == 0);
    CHECK_OK(amap_reserve(map, 4000));
    size_t reserved = 0;
    CHECK_OK(amap_capacity(map, &reserved));
    CHECK(reserved >= 4000);
    char key[16];
    for (int i = 0; i < 4000; i++) {
        snprintf(key, sizeof key, "s%d", i);
        CHECK_OK(insert(map, key, i));
    }
    CHECK_OK(amap_capacity(map, &capacity));
    CHECK(capacity == reserved); /* no shard had to grow */
    amap_value_t *held = NULL;
    CHECK_OK(amap_get(map, K("s3999"), 5, &held));
    size_t removed = 0;
    CHECK_OK(amap_retain(map, keep_below_ten, NULL, &removed));
    CHECK(removed == 3990);
    CHECK_OK(amap_shrink_to_fit(map));
    CHECK_OK(amap_capacity(map, &capacity));
    CHECK(capacity >= 10 && capacity < reserved / 8);
    size_t n = 0;
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 10);
    CHECK(has(map, "s7") && !has(map, "s10"));
    CHECK(payload_of(held) == 3999); /* evicted and shrunk past, still held */
    CHECK_STATUS(amap_reserve(map, SIZE_MAX), AMAP_INVALID_ARGUMENT);
    CHECK_OK(amap_capacity(map, &n));
    CHECK(n == capacity);
#if SIZE_MAX > 0xFFFFFFFFu
    /* Counted, but 64 PiB a shard: past any address space, so refused. */
    CHECK_STATUS(amap_reserve(map, (size_t)1 << 55), AMAP_NO_MEMORY);
    CHECK_OK(amap_capacity(map, &n));
    CHECK(n == capacity);
#endif
    CHECK(strcmp(amap_status_str(AMAP_NO_MEMORY), "the system refused the memory asked for") == 0);
    CHECK_OK(amap_value_release(held));
    reclaim_until_destroyed(map, before + 3990);
    CHECK_OK(amap_clear_async(map, NULL));
    CHECK_OK(amap_capacity(map, &capacity));
    CHECK(capacity == 0);
    CHECK_OK(amap_shrink_to_fit(map)); /* nothing to shrink */
    CHECK_OK(insert(map, "again", 1));
    CHECK(has(map, "again"));
    amap_free(map);
}

/* What a read section and a snapshot say of their own generation: its length,
 * its keys and its id; a read section over a snapshot borrows from the
 * snapshot's generation and outlives the snapshot and the map. */
static void generation_queries(void) {
    amap_t *map = new_manual_map();
    CHECK_OK(insert(map, "a", 1));
    CHECK_OK(insert(map, "b", 2));
    amap_snapshot_t *snap = NULL;
    CHECK_OK(amap_snapshot(map, &snap));
    amap_ticket_t *ticket = NULL;
    CHECK_OK(amap_clear_async(map, &ticket));
    CHECK_OK(insert(map, "c", 3));
    uint64_t snap_generation = 9, ticket_id = 9;
    CHECK_OK(amap_snapshot_generation(snap, &snap_generation));
    CHECK_OK(amap_ticket_id(ticket, &ticket_id));
    CHECK(snap_generation == 0 && ticket_id == 0);
    uint8_t present = 9;
    CHECK_OK(amap_snapshot_contains(snap, K("a"), 1, &present));
    CHECK(present == 1);
    CHECK_OK(amap_snapshot_contains(snap, K("c"), 1, &present));
    CHECK(present == 0);

    /* The map's section: the new generation. */
    amap_read_t *now = NULL;
    CHECK_OK(amap_read_begin(map, &now));
    size_t n = 9;
    uint64_t generation = 9;
    CHECK_OK(amap_read_len(now, &n));
    CHECK_OK(amap_read_generation(now, &generation));
    CHECK(n == 1 && generation == 1);
    CHECK_OK(amap_read_contains(now, K("c"), 1, &present));
    CHECK(present == 1);
    CHECK_OK(amap_read_contains(now, K("a"), 1, &present));
    CHECK(present == 0);
    amap_read_end(now);

    /* The snapshot's section: the old one, borrowed. Reclamation passes run
     * first, so that only the snapshot holds the retired generation (the map's
     * hand-off and grace period are past); then the section alone does. */
    for (int i = 0; i < 8; i++) amap_reclaim(map, NULL);
    uint8_t reclaimed = 9;
    CHECK_OK(amap_ticket_is_reclaimed(ticket, &reclaimed));
    CHECK(reclaimed == 0); /* the snapshot holds it */
    amap_read_t *then = NULL;
    CHECK_STATUS(amap_snapshot_read_begin(snap, NULL), AMAP_NULL_ARGUMENT);
    CHECK_OK(amap_snapshot_read_begin(snap, &then));
    CHECK_OK(amap_read_len(then, &n));
    CHECK_OK(amap_read_generation(then, &generation));
    CHECK(n == 2 && generation == 0);
    amap_snapshot_release(snap);
    for (int i = 0; i < 8; i++) amap_reclaim(map, NULL);
    CHECK_OK(amap_ticket_is_reclaimed(ticket, &reclaimed));
    CHECK(reclaimed == 0); /* the section holds it */
    void *data = NULL;
    CHECK_OK(amap_read_get(then, K("b"), 1, &data));
    CHECK(((item_t *)data)->magic == LIVE && ((item_t *)data)->payload == 2);
    CHECK_STATUS(amap_read_get(then, K("c"), 1, &data), AMAP_NOT_FOUND);
    pthread_t other;
    CHECK(pthread_create(&other, NULL, use_read_elsewhere, then) == 0);
    CHECK(pthread_join(other, NULL) == 0);
    int walked = 0;
    CHECK_OK(amap_read_for_each(then, count_entries, &walked));
    CHECK(walked == 2);
    amap_free(map);
    /* The map is gone: the section still lends the old generation's data. */
    CHECK_OK(amap_read_contains(then, K("a"), 1, &present));
    CHECK(present == 1);
    CHECK(((item_t *)data)->magic == LIVE && ((item_t *)data)->payload == 2);
    amap_read_end(then);
    /* Nothing holds it now: torn down (by the process-wide reclaimer, which takes
     * over a manual domain whose last map went). */
    CHECK_OK(amap_ticket_wait(ticket, 10000));
    amap_ticket_free(ticket);
}

/* Either hash function serves every operation; a value that names none is
 * refused (which function a map got is checked on the Rust side:
 * ffi/src/map.rs, the_hasher_option_picks_the_maps_hasher). */
static void hashers(void) {
    amap_options_t options;
    CHECK_OK(amap_options_init(&options));
    CHECK(options.hasher == AMAP_HASHER_FAST);
    const uint8_t named[] = {AMAP_HASHER_FAST, AMAP_HASHER_SIPHASH};
    for (size_t h = 0; h < sizeof named; h++) {
        options.reclaim_mode = AMAP_RECLAIM_MANUAL;
        options.hasher = named[h];
        amap_t *map = NULL;
        CHECK_OK(amap_new_with(&options, &map));
        int before = atomic_load(&destroyed);
        char key[32];
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof key, "tenant-%d", i);
            CHECK_OK(insert(map, key, i));
        }
        for (int i = 0; i < 1000; i += 2) {
            snprintf(key, sizeof key, "tenant-%d", i);
            CHECK_OK(amap_remove(map, K(key), strlen(key)));
        }
        size_t n = 0;
        CHECK_OK(amap_len(map, &n));
        CHECK(n == 500);
        for (int i = 0; i < 1000; i++) {
            snprintf(key, sizeof key, "tenant-%d", i);
            CHECK(has(map, key) == (i % 2));
        }
        amap_value_t *v = NULL;
        CHECK_OK(amap_get(map, K("tenant-999"), 10, &v));
        CHECK(payload_of(v) == 999);
        CHECK_OK(amap_value_release(v));
        amap_snapshot_t *snap = NULL;
        CHECK_OK(amap_snapshot(map, &snap));
        tally_t t = {0, 0};
        CHECK_OK(amap_snapshot_foreach(snap, tally, &t));
        CHECK(t.count == 500 && t.sum == 250000); /* 1 + 3 + ... + 999 */
        amap_snapshot_release(snap);
        reclaim_until_destroyed(map, before + 500);
        amap_free(map);
        CHECK(atomic_load(&destroyed) == before + 1000);
    }
    for (unsigned bad_hasher = 2; bad_hasher <= 255; bad_hasher += 253) {
        options.hasher = (uint8_t)bad_hasher;
        amap_t *bad = (amap_t *)0x1;
        CHECK_STATUS(amap_new_with(&options, &bad), AMAP_INVALID_ARGUMENT);
        CHECK(bad == (amap_t *)0x1);
    }
}

int main(void) {
    CHECK(strcmp(amap_version(), "0.9.0") == 0);
    CHECK(strcmp(amap_status_str(AMAP_OK), "ok") == 0);
    CHECK(strcmp(amap_status_str(AMAP_NOT_FOUND), "key not found") == 0);
    CHECK(strcmp(amap_status_str(12345), "unknown status") == 0);

    amap_options_t options;
    CHECK_OK(amap_options_init(&options));
    CHECK(options.reclaim_mode == AMAP_RECLAIM_BACKGROUND && options.shards == 0 && options.trim_memory);
    options.reclaim_mode = 7;
    amap_t *bad = NULL;
    CHECK_STATUS(amap_new_with(&options, &bad), AMAP_INVALID_ARGUMENT);
    CHECK(bad == NULL);
    options.reclaim_mode = AMAP_RECLAIM_MANUAL;
    options.shards = 4;
    amap_t *map = NULL;
    CHECK_OK(amap_new_with(&options, &map));
    CHECK(map != NULL);

    null_arguments(map);

    /* insert, get, contains, len, replace, remove */
    CHECK_OK(insert(map, "a", 1));
    CHECK_OK(insert(map, "b", 2));
    CHECK_OK(amap_insert(map, NULL, 0, new_item(0), destroy_item, &destroyed)); /* the empty key */
    size_t n = 0;
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 3);
    CHECK(has(map, "a"));
    CHECK(!has(map, "zz"));
    amap_value_t *missing = (amap_value_t *)0x1;
    CHECK_STATUS(amap_get(map, K("zz"), 2, &missing), AMAP_NOT_FOUND);
    CHECK(missing == (amap_value_t *)0x1); /* out-params are written only on success */

    amap_value_t *a = NULL;
    CHECK_OK(amap_get(map, K("a"), 1, &a));
    CHECK(payload_of(a) == 1);
    CHECK_OK(amap_value_retain(a)); /* two references held by this code now */
    CHECK_OK(insert(map, "a", 10)); /* replaces: the old value stays held */
    CHECK(payload_of(a) == 1);
    CHECK_OK(amap_remove(map, K("b"), 1));
    CHECK_STATUS(amap_remove(map, K("b"), 1), AMAP_NOT_FOUND);

    /* read sections borrow without retaining, and only on their own thread */
    amap_read_t *read = NULL;
    CHECK_OK(amap_read_begin(map, &read));
    void *data = NULL;
    CHECK_OK(amap_read_get(read, K("a"), 1, &data));
    CHECK(((item_t *)data)->payload == 10);
    CHECK_STATUS(amap_read_get(read, K("b"), 1, &data), AMAP_NOT_FOUND);
    pthread_t other;
    CHECK(pthread_create(&other, NULL, use_read_elsewhere, read) == 0);
    CHECK(pthread_join(other, NULL) == 0);

    /* one-call reads: the callback sees the data, once, only when found */
    visit_t seen = {0};
    CHECK_OK(amap_get_with(map, K("a"), 1, record_visit, &seen));
    CHECK(seen.calls == 1 && seen.data == data && seen.payload == 10);
    CHECK_STATUS(amap_get_with(map, K("b"), 1, record_visit, &seen), AMAP_NOT_FOUND);
    CHECK(seen.calls == 1);
    CHECK_OK(amap_get_with(map, K("a"), 1, insert_from_visit, map));
    CHECK(has(map, "from-visit"));
    CHECK_OK(amap_remove(map, K("from-visit"), 10));

    /* snapshots see one generation, across a clear */
    amap_snapshot_t *snap = NULL;
    CHECK_OK(amap_snapshot(map, &snap));
    amap_ticket_t *retired = NULL;
    CHECK_OK(amap_clear_async(map, &retired));
    uint64_t retired_id = 99;
    CHECK_OK(amap_ticket_id(retired, &retired_id));
    CHECK(retired_id == 0);
    CHECK_STATUS(amap_ticket_id(retired, NULL), AMAP_NULL_ARGUMENT);
    CHECK_STATUS(amap_ticket_is_reclaimed(retired, NULL), AMAP_NULL_ARGUMENT);
    CHECK_OK(amap_len(map, &n));
    CHECK(n == 0);
    CHECK(((item_t *)data)->payload == 10); /* the read section still sees it */
    CHECK_OK(amap_snapshot_len(snap, &n));
    CHECK(n == 2);
    amap_value_t *from_snap = NULL;
    CHECK_OK(amap_snapshot_get(snap, K("a"), 1, &from_snap));
    CHECK(payload_of(from_snap) == 10);
    tally_t t = {0, 0};
    CHECK_OK(amap_snapshot_foreach(snap, tally, &t));
    CHECK(t.count == 2 && t.sum == 10);
    CHECK(kept != NULL && payload_of(kept) == 10); /* retained inside the callback */
    int calls = 0;
    CHECK_OK(amap_snapshot_foreach(snap, stop_at_first, &calls));
    CHECK(calls == 1);
    CHECK_STATUS(amap_snapshot_foreach(snap, NULL, NULL), AMAP_NULL_ARGUMENT);

    /* manual mode: nothing is reclaimed while held, or before amap_reclaim; this
     * thread's read section, begun before the clear, holds the teardown up: a
     * wait here would wait for itself */
    CHECK_STATUS(amap_ticket_wait(retired, 0), AMAP_WOULD_DEADLOCK);
    CHECK_STATUS(amap_ticket_wait(retired, 5), AMAP_WOULD_DEADLOCK);
    uint8_t reclaimed_flag = 1;
    CHECK_OK(amap_ticket_is_reclaimed(retired, &reclaimed_flag));
    CHECK(reclaimed_flag == 0);
    amap_read_end(read);
    amap_snapshot_release(snap);
    CHECK(atomic_load(&destroyed) == 0);
    /* One pass, or a few: the retired generation waits out an epoch grace period
     * first (a thread pinned meanwhile, such as another map's reclaimer, stretches
     * it). Every pass counts what it tore down. */
    size_t reclaimed = 0, passes = 0;
    while (reclaimed == 0 && passes++ < 10000) {
        size_t now = 0;
        CHECK_OK(amap_reclaim(map, &now));
        reclaimed += now;
    }
    CHECK(reclaimed == 1);
    CHECK_OK(amap_ticket_is_reclaimed(retired, &reclaimed_flag));
    CHECK(reclaimed_flag == 1);
    CHECK_OK(amap_ticket_wait(retired, 0));
    CHECK_OK(amap_ticket_wait(retired, -1));
    amap_ticket_free(retired);
    CHECK_OK(amap_value_release(from_snap));
    CHECK_OK(amap_value_release(kept));
    amap_stats_t stats;
    CHECK_OK(amap_stats(map, &stats));
    CHECK(stats.generation == 1 && stats.retired_generations == 0 && stats.reclaimed_generations == 1);

    /* 100,000 C retains of one value: no overflow, one destruction at the end */
    for (int i = 0; i < 100000; i++) CHECK_OK(amap_value_retain(a));
    for (int i = 0; i < 100000; i++) CHECK_OK(amap_value_release(a));
    CHECK(payload_of(a) == 1);

    /* values held by C survive clears and the map itself */
    CHECK_OK(insert(map, "c", 3));
    amap_free(map);
    CHECK(payload_of(a) == 1);
    CHECK_OK(amap_value_release(a));
    CHECK_OK(amap_value_release(a)); /* the last reference */

    /* destructions run (some deferred through the epoch): drive them with a
     * throwaway map's reclaim on this thread */
    amap_t *driver = amap_new();
    for (int i = 0; i < 1000 && atomic_load(&destroyed) < 6; i++) {
        CHECK_OK(amap_reclaim(driver, NULL));
        usleep(1000);
    }
    amap_free(driver);
    CHECK(atomic_load(&destroyed) == 6); /* a(1), a(10), b, from-visit, "", c */

    bad_input_and_reentrancy();
    read_iteration();
    get_with_pins_through_the_callback();
    ticket_wait_in_an_older_read_section();
    ticket_wait_under_the_maps_own_lock();
    ticket_on_reclaimed();
    batch_and_replace();
    conditional_writes();
    compute_writes();
    eviction();
    sizing();
    hashers();
    generation_queries();
    ticket_wait_inside_destructor();
    release_below_zero_aborts();
    over_release_while_mapped_aborts();
    read_end_inside_walk_aborts();
    read_end_twice_aborts();
    printf("test_api: ok\n");
    return 0;
}
