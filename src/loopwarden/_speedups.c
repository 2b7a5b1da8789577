/* loopwarden._speedups: the lock rules' wrapper, in C, for the two paths every
 * lock call of the process takes; further down, the file-object rules'
 * wrapper (StreamMethod) and the registry's replay loops (writing and taking
 * off a recorded list of patches).
 *
 * A lock acquisition costs about 40 ns unpatched. A Python-level wrapper costs
 * several times that before it has decided anything, so `LockMethod` does the
 * two common cases here and hands every other call, unchanged, to the Python
 * wrapper of loopwarden.lock_wrapper (`slow`), which stays the reference:
 *
 *  - off the loop (no running asyncio loop, no probe for this thread, or no
 *    active warden): the original; then the lock's owner entry, if it has
 *    one, is forgotten (loopwarden.lock_owners: an acquisition by anyone but
 *    the entry's owner means the lock was released since);
 *  - on a guarded thread whose loop verdict is cached (threads.last_loop),
 *    `lock.acquire()`, `with lock:` and `lock.acquire(False)`: one
 *    non-blocking acquire. Taken: the call is over (a Lock that this thread
 *    owned before gets its acquisition site updated). Held by someone:
 *    acquire(False) returns False, the others take the Python wrapper's full
 *    path. A Lock not yet known to be this thread's takes it too (it writes
 *    the owner entry, and prunes the table).
 *
 * No bytecode of the caller's thread runs between the acquire and the return
 * (every call here is C), so no signal handler can interrupt that stretch and
 * the Ctrl-C guard of the Python wrapper has nothing to guard here; the owner
 * entry is popped right after the acquire that makes it stale. (On 3.11 the
 * frame object made for the caller's site may start a garbage collection,
 * whose finalizers run Python code: by then the lock is taken and the entry
 * names this thread, and an exception there is only "ignored".)
 *
 * After a failed attempt off the loop the entry is kept: the lock is held, and
 * the entry still names the thread that holds it. (The Python wrapper drops
 * it then, the conservative side: only a self-deadlock goes unseen.)
 *
 * The object is a method descriptor (it binds like a function, so it can sit
 * in the lock type's __dict__) with a __dict__ of its own for the attributes
 * loopwarden sets on every wrapper (__wrapped__, __loopwarden_rule__, ...).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <frameobject.h>
#include <pythread.h>
#include <stddef.h>
#include <structmember.h>
#ifndef MS_WINDOWS
#include <pthread.h>
#include <unistd.h>
#endif

/* Bump with any change to the arguments of LockMethod or of a function here, or
 * to what they do. */
#define LOOPWARDEN_SPEEDUPS_ABI 8

/* ---- running_loop: asyncio's _get_running_loop without a system call (3.10, 3.11) ----
 *
 * Every patched call asks first whether this thread runs an asyncio loop. On
 * CPython 3.10 and 3.11, _asyncio._get_running_loop answers "a loop" only after
 * comparing the pid recorded with it to getpid(), a system call on every call
 * (glibc caches no pid since 2.25): ~70 ns of the ~86 ns it costs on a loop
 * thread, paid by every wrapper there. 3.12 keeps no pid (asyncio forgets the
 * loop in a forked child instead), so this is for 3.10 and 3.11 only.
 *
 * The answer is read here from the same record _asyncio reads: the holder that
 * _set_running_loop stores in the thread state dict (`_RunningLoopHolder`: the
 * loop and the pid that set it, a layout fixed since 3.7 and gone in 3.12), and
 * its pid is compared with this process's, which is kept here and set again in a
 * forked child (pthread_atfork: every fork Python makes runs it; a raw fork
 * syscall from C that skips the handlers would leave the parent's pid, and a
 * child that then runs Python code on the loop thread would be taken for the
 * loop's). A holder of another type or size than expected
 * (another build of _asyncio) is never read: the original answers. */
#if PY_VERSION_HEX < 0x030C0000 && !defined(MS_WINDOWS)
#define LOOPWARDEN_RUNNING_LOOP 1

typedef struct {
    PyObject_HEAD
    PyObject *rl_loop;
    pid_t rl_pid;
} RunningLoopHolder; /* _asyncio's PyRunningLoopHolder, 3.7 to 3.11 */

static PyObject *str_running_key;         /* "__asyncio_running_event_loop__" */
static PyObject *original_running_loop;   /* _asyncio._get_running_loop */
static PyTypeObject *holder_type;         /* _RunningLoopHolder, once one was seen */
static pid_t process_id;

/* The last lookup of the key, as _asyncio keeps its own (cached_running_holder):
 * the thread state dict it was made in and that dict's version then (PEP 509).
 * A dict gets a new, process-wide unique version at its creation and at every
 * change, so while one still shows the version seen, it is the same dict, not
 * changed since: the holder looked up (borrowed from it) is still in it, alive.
 * The dict pointer is only compared, never followed unless it is this thread's.
 * One entry: a loop thread's calls far outnumber the others', and another
 * thread's call costs the lookup it always did. Saves the string-keyed lookup,
 * about 80 instructions, on every call of every wrapper. */
static PyObject *cached_thread_dict;      /* compared only */
static uint64_t cached_dict_version;
static PyObject *cached_holder;           /* borrowed from that dict; NULL: no key in it */

static void
running_loop_after_fork(void)
{
    process_id = getpid(); /* the child's: a holder from before the fork is not its loop */
}

/* A new reference to this thread's running loop or None; NULL with an exception. */
static PyObject *
fast_running_loop(void)
{
    PyObject *thread_dict = PyThreadState_GetDict(); /* borrowed; NULL raises nothing */
    if (thread_dict == NULL) {
        return PyObject_CallNoArgs(original_running_loop);
    }
    PyObject *holder;
    uint64_t version = ((PyDictObject *)thread_dict)->ma_version_tag; /* 3.10, 3.11 only */
    if (thread_dict == cached_thread_dict && version == cached_dict_version) {
        holder = cached_holder;
    }
    else {
        holder = PyDict_GetItemWithError(thread_dict, str_running_key); /* borrowed */
        if (holder == NULL && PyErr_Occurred()) {
            return NULL;
        }
        cached_thread_dict = thread_dict;
        cached_dict_version = version;
        cached_holder = holder;
    }
    if (holder == NULL) {
        Py_RETURN_NONE; /* no loop ever ran on this thread */
    }
    if (Py_TYPE(holder) != holder_type) {
        PyTypeObject *type = Py_TYPE(holder);
        if (holder_type != NULL || type->tp_basicsize != (Py_ssize_t)sizeof(RunningLoopHolder) ||
            strcmp(type->tp_name, "_RunningLoopHolder") != 0) {
            return PyObject_CallNoArgs(original_running_loop); /* not the record we know */
        }
        holder_type = type; /* a static type of _asyncio: it lives as long as the process */
    }
    RunningLoopHolder *record = (RunningLoopHolder *)holder;
    if (record->rl_loop == Py_None || record->rl_pid != process_id) {
        Py_RETURN_NONE;
    }
    return Py_NewRef(record->rl_loop);
}

PyDoc_STRVAR(running_loop_doc,
             "running_loop()\n--\n\n"
             "The running asyncio loop of this thread, or None: _asyncio._get_running_loop\n"
             "without its getpid() system call.");

static PyObject *
speedups_running_loop(PyObject *module, PyObject *Py_UNUSED(ignored))
{
    return fast_running_loop();
}

/* PyObject_CallNoArgs(running_loop), with no call at all when it is this module's. */
static PyObject *running_loop_function; /* the module's running_loop, once created */

static inline PyObject *
ask_running_loop(PyObject *running_loop)
{
    if (running_loop == running_loop_function) {
        return fast_running_loop();
    }
    return PyObject_CallNoArgs(running_loop);
}
#else
static inline PyObject *
ask_running_loop(PyObject *running_loop)
{
    return PyObject_CallNoArgs(running_loop);
}
#endif

/* ---- take_free_lock: a Lock's acquire(False) without its argument parsing (3.10-3.13) ----
 *
 * On a guarded thread the wrapper tries the lock once without waiting, as
 * `lock.acquire(False)`: through the method's call, that builds an argument
 * tuple and parses it with PyArg_ParseTupleAndKeywords, ~400 instructions,
 * more than the lock's own acquire() + release() (~300). What acquire(False)
 * does is two lines of _threadmodule.c: one PyThread_acquire_lock_timed(lock,
 * 0, 0) attempt (GIL held, no wait), and `locked = 1` if it took the lock
 * (release() checks that flag). Here they are done directly, on the
 * `lockobject` layout of CPython 3.10 to 3.13 ({lock_lock, in_weakreflist,
 * locked}; not with the GIL disabled, and not past 3.13, which no one has
 * checked). The layout is checked at import on a lock of our own: the type's
 * size and weak-reference offset, and the flag and the underlying lock
 * following acquire() and release() called the normal way. Any mismatch
 * (another build of _thread) and the method's call is used, as before. */
#if PY_VERSION_HEX < 0x030E0000 && !defined(Py_GIL_DISABLED)
#define LOOPWARDEN_LOCK_LAYOUT 1

typedef struct {
    PyObject_HEAD
    PyThread_type_lock lock_lock;
    PyObject *in_weakreflist;
    char locked;
} RawLock; /* _thread's lockobject, 3.10 to 3.13 */

static PyTypeObject *raw_lock_type; /* _thread.LockType once its layout checked out */
static PyCFunction raw_lock_acquire; /* the C function of its acquire method */

/* 1: the layout above is _thread.LockType's; 0: it is not (or could not be told). */
static int
raw_lock_layout_holds(PyObject *thread, PyTypeObject *type)
{
    if (type->tp_basicsize != (Py_ssize_t)sizeof(RawLock) ||
        type->tp_weaklistoffset != (Py_ssize_t)offsetof(RawLock, in_weakreflist)) {
        return 0;
    }
    PyObject *lock = PyObject_CallMethod(thread, "allocate_lock", NULL);
    if (lock == NULL) {
        return 0;
    }
    RawLock *raw = (RawLock *)lock;
    int holds = Py_TYPE(lock) == type && raw->lock_lock != NULL && raw->locked == 0;
    if (holds) {
        PyObject *taken = PyObject_CallMethod(lock, "acquire", NULL);
        holds = taken == Py_True && raw->locked == 1 &&
                PyThread_acquire_lock_timed(raw->lock_lock, 0, 0) == PY_LOCK_FAILURE;
        Py_XDECREF(taken);
        if (taken != NULL) {
            PyObject *released = PyObject_CallMethod(lock, "release", NULL);
            holds = holds && released == Py_None && raw->locked == 0;
            Py_XDECREF(released);
            if (released != NULL && holds) {
                /* Free again underneath too: take and give back what release() freed. */
                holds = PyThread_acquire_lock_timed(raw->lock_lock, 0, 0) == PY_LOCK_ACQUIRED;
                if (holds) {
                    PyThread_release_lock(raw->lock_lock);
                }
            }
        }
    }
    Py_DECREF(lock);
    return holds;
}

static void
check_raw_lock_layout(void)
{
    PyObject *thread = PyImport_ImportModule("_thread");
    PyObject *type = thread == NULL ? NULL : PyObject_GetAttrString(thread, "LockType");
    /* The method as the type defines it (not a patch of someone else's). */
    PyObject *acquire = type == NULL || !PyType_Check(type)
                            ? NULL
                            : PyDict_GetItemString(((PyTypeObject *)type)->tp_dict, "acquire");
    if (acquire != NULL && Py_IS_TYPE(acquire, &PyMethodDescr_Type) &&
        PyDescr_TYPE(acquire) == (PyTypeObject *)type &&
        raw_lock_layout_holds(thread, (PyTypeObject *)type)) {
        raw_lock_acquire = ((PyMethodDescrObject *)acquire)->d_method->ml_meth;
        raw_lock_type = (PyTypeObject *)type; /* kept: compared with every lock's type */
    }
    else {
        Py_XDECREF(type);
    }
    Py_XDECREF(thread);
    PyErr_Clear(); /* no fast take, nothing worse */
}
#endif

/* 1: `take` is _thread.LockType's own acquire, which take_free_lock may do directly. */
static int
takes_raw_lock(PyObject *take)
{
#ifdef LOOPWARDEN_LOCK_LAYOUT
    return raw_lock_type != NULL && Py_IS_TYPE(take, &PyMethodDescr_Type) &&
           PyDescr_TYPE(take) == raw_lock_type &&
           ((PyMethodDescrObject *)take)->d_method->ml_meth == raw_lock_acquire;
#else
    (void)take;
    return 0;
#endif
}

/* take(lock, False): Py_True, Py_False (new references), or NULL with an error.
 * `raw`: take is LockType's acquire (takes_raw_lock); then a Lock is tried
 * directly, and anything else (an acquire called on the wrong type) through
 * the call, which raises what it always did. */
static inline PyObject *
take_free_lock(PyObject *take, int raw, PyObject *lock)
{
#ifdef LOOPWARDEN_LOCK_LAYOUT
    if (raw && Py_TYPE(lock) == raw_lock_type) {
        RawLock *raw = (RawLock *)lock;
        if (PyThread_acquire_lock_timed(raw->lock_lock, 0, 0) == PY_LOCK_ACQUIRED) {
            raw->locked = 1;
            Py_RETURN_TRUE;
        }
        Py_RETURN_FALSE;
    }
#endif
    PyObject *take_args[2] = {lock, Py_False};
    return PyObject_Vectorcall(take, take_args, 2, NULL);
}

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *original;     /* the C acquire or __enter__ */
    PyObject *take;         /* the C acquire, called as take(lock, False) */
    PyObject *slow;         /* the Python wrapper: every other call */
    PyObject *running_loop; /* asyncio.events._get_running_loop */
    PyObject *probes;       /* dict: thread id -> probe of a guarded thread */
    PyObject *wardens;      /* list: the active wardens */
    PyObject *held;         /* dict: lock -> [owner id, code, lasti]; NULL: not tracked */
    PyObject *last;         /* threading.local: .loop and .runs_here of this thread */
    PyObject *dict;         /* __dict__ */
    PyObject *weakreflist;  /* weakref.WeakMethod(lock.acquire) takes one of us */
    /* The last (thread, loop) found guarded in `last`: the loop thread of an
     * app asks again and again. A strong reference, so that the identity
     * test can never match another loop at the same address. */
    unsigned long guarded_ident;
    PyObject *guarded_loop;
    int raw_take; /* take is LockType's acquire: take_free_lock may skip the call */
} LockMethod;

static PyObject *str_loop;      /* "loop" */
static PyObject *str_runs_here; /* "runs_here" */

/* The original, then forget the owner entry of the lock it took. */
static PyObject *
call_original(LockMethod *self, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    PyObject *result = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    if (result == NULL || self->held == NULL || PyDict_GET_SIZE(self->held) == 0) {
        return result;
    }
    if (result == Py_True) {
        /* Keys are _thread.lock objects: hashing and comparing them runs no
         * Python code, so nothing gets between the acquire and the pop. */
        PyObject *lock = args[0];
        int has_entry = PyDict_Contains(self->held, lock);
        if (has_entry < 0 || (has_entry == 1 && PyDict_DelItem(self->held, lock) < 0)) {
            PyErr_Clear(); /* nothing to forget */
        }
    }
    return result;
}

/* 1: this thread is guarded by `loop` and the Python side said so (its
 * verdict cache, threads.last_loop); 0: not known here. */
static int
cached_guarded(LockMethod *self, PyObject *loop, unsigned long ident)
{
    if (loop == self->guarded_loop && ident == self->guarded_ident) {
        return 1;
    }
    PyObject *last_loop = PyObject_GetAttr(self->last, str_loop);
    if (last_loop == NULL) {
        PyErr_Clear();
        return 0;
    }
    int same = last_loop == loop;
    Py_DECREF(last_loop);
    if (!same) {
        return 0;
    }
    PyObject *runs_here = PyObject_GetAttr(self->last, str_runs_here);
    if (runs_here == NULL) {
        PyErr_Clear();
        return 0;
    }
    int guarded = runs_here == Py_True;
    Py_DECREF(runs_here);
    if (guarded) {
        Py_INCREF(loop);
        Py_XSETREF(self->guarded_loop, loop);
        self->guarded_ident = ident;
    }
    return guarded;
}

/* 1: `known` is the owner entry of this thread; 0: it is not. */
static int
owned_here(PyObject *known, unsigned long ident)
{
    if (!PyList_CheckExact(known) || PyList_GET_SIZE(known) < 3) {
        return 0;
    }
    PyObject *owner = PyList_GET_ITEM(known, 0);
    if (!PyLong_CheckExact(owner)) {
        return 0;
    }
    unsigned long value = PyLong_AsUnsignedLong(owner);
    if (value == (unsigned long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return value == ident;
}

/* The caller's code and instruction into the entry: the site a self-deadlock
 * message names. Best effort: the lock is taken whatever happens here. */
static void
note_site(PyObject *known)
{
    PyFrameObject *frame = PyEval_GetFrame(); /* borrowed: whoever called the lock */
    if (frame == NULL) {
        return;
    }
#if PY_VERSION_HEX >= 0x030B0000
    long lasti = PyFrame_GetLasti(frame);
#else
    long lasti = frame->f_lasti * (long)sizeof(_Py_CODEUNIT); /* what frame.f_lasti says */
#endif
    PyObject *code = (PyObject *)PyFrame_GetCode(frame);
    if (code == NULL) {
        PyErr_Clear();
        return;
    }
    if (PyList_GET_SIZE(known) < 3) {
        Py_DECREF(code); /* not an entry of lock_owners' shape any more */
        return;
    }
    PyObject *old_lasti = PyList_GET_ITEM(known, 2);
    if (PyList_GET_ITEM(known, 1) == code && PyLong_CheckExact(old_lasti)) {
        long old = PyLong_AsLong(old_lasti);
        if (old == -1 && PyErr_Occurred()) {
            PyErr_Clear();
        }
        else if (old == lasti) {
            Py_DECREF(code); /* the same site as last time: nothing to write */
            return;
        }
    }
    PyObject *lasti_object = PyLong_FromLong(lasti);
    if (lasti_object == NULL) {
        Py_DECREF(code);
        PyErr_Clear();
        return;
    }
    /* PyList_SetItem steals the references. */
    PyList_SetItem(known, 1, code);
    PyList_SetItem(known, 2, lasti_object);
}

static PyObject *
LockMethod_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    LockMethod *self = (LockMethod *)op;
    if (self->slow == NULL) {
        /* Only the garbage collector clears one: never crash a call that still reaches it. */
        PyErr_SetString(PyExc_RuntimeError, "loopwarden lock wrapper used after it was cleared");
        return NULL;
    }
    Py_ssize_t nargs = PyVectorcall_NARGS(nargsf);
    if (nargs == 0) {
        goto slow; /* no lock at all: the Python wrapper raises what the method would */
    }
    int positional = kwnames == NULL || PyTuple_GET_SIZE(kwnames) == 0;
    /* acquire(False), as Condition._is_owned() calls it on every notify(): never waits. */
    int attempt_only = positional && nargs == 2 && args[1] == Py_False;
    PyObject *loop = ask_running_loop(self->running_loop);
    if (loop == NULL) {
        return NULL;
    }
    if (loop == Py_None) {
        Py_DECREF(loop);
        if (PyDict_GET_SIZE(self->probes) != 0) {
            /* A probe guards this thread (the Qt GUI thread): the full path. */
            PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
            if (ident == NULL) {
                return NULL;
            }
            int probed = PyDict_Contains(self->probes, ident);
            Py_DECREF(ident);
            if (probed != 0) {
                PyErr_Clear();
                goto slow;
            }
        }
        return call_original(self, args, nargsf, kwnames);
    }
    if (PyList_GET_SIZE(self->wardens) == 0) {
        Py_DECREF(loop);
        return call_original(self, args, nargsf, kwnames);
    }
    if (!positional || (nargs != 1 && !attempt_only)) {
        Py_DECREF(loop);
        goto slow; /* a timeout, keywords: the rule's full path decides */
    }
    unsigned long ident = PyThread_get_thread_ident();
    int guarded = cached_guarded(self, loop, ident);
    Py_DECREF(loop);
    if (!guarded) {
        goto slow; /* guarded_loop() works it out, and caches it */
    }
    PyObject *lock = args[0];
    PyObject *known = NULL;
    if (self->held != NULL) {
        known = PyDict_GetItemWithError(self->held, lock); /* borrowed */
        if (known == NULL) {
            if (PyErr_Occurred()) {
                PyErr_Clear();
            }
            goto slow; /* not this thread's yet: the entry is written first */
        }
        if (!owned_here(known, ident)) {
            goto slow;
        }
        Py_INCREF(known);
    }
    PyObject *taken = take_free_lock(self->take, self->raw_take, lock);
    if (taken == Py_True) {
        if (known != NULL) {
            note_site(known);
            Py_DECREF(known);
        }
        return taken;
    }
    Py_XDECREF(known);
    if (taken == NULL || attempt_only) {
        return taken; /* an error, or acquire(False) of a held lock: False */
    }
    Py_DECREF(taken); /* held: the full path */
slow:
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static PyObject *
LockMethod_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"original", "take",    "slow", "running_loop", "probes",
                            "wardens",  "held",    "last", NULL};
    PyObject *original, *take, *slow, *running_loop, *probes, *wardens, *held, *last;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOOO!O!OO:LockMethod", names, &original,
                                     &take, &slow, &running_loop, &PyDict_Type, &probes,
                                     &PyList_Type, &wardens, &held, &last)) {
        return NULL;
    }
    if (held != Py_None && !PyDict_CheckExact(held)) {
        PyErr_SetString(PyExc_TypeError, "held must be a dict or None");
        return NULL;
    }
    if (!PyCallable_Check(original) || !PyCallable_Check(take) || !PyCallable_Check(slow) ||
        !PyCallable_Check(running_loop)) {
        PyErr_SetString(PyExc_TypeError, "original, take, slow and running_loop must be callable");
        return NULL;
    }
    LockMethod *self = (LockMethod *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = LockMethod_vectorcall;
    self->original = Py_NewRef(original);
    self->take = Py_NewRef(take);
    self->slow = Py_NewRef(slow);
    self->running_loop = Py_NewRef(running_loop);
    self->probes = Py_NewRef(probes);
    self->wardens = Py_NewRef(wardens);
    self->held = held == Py_None ? NULL : Py_NewRef(held);
    self->last = Py_NewRef(last);
    self->dict = NULL;
    self->weakreflist = NULL;
    self->guarded_ident = 0;
    self->guarded_loop = NULL;
    self->raw_take = takes_raw_lock(take);
    return (PyObject *)self;
}

static int
LockMethod_traverse(LockMethod *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->take);
    Py_VISIT(self->slow);
    Py_VISIT(self->running_loop);
    Py_VISIT(self->probes);
    Py_VISIT(self->wardens);
    Py_VISIT(self->held);
    Py_VISIT(self->last);
    Py_VISIT(self->dict);
    Py_VISIT(self->guarded_loop);
    return 0;
}

static int
LockMethod_clear(LockMethod *self)
{
    /* `slow` first: the vectorcall tests it before using the others. */
    Py_CLEAR(self->slow);
    Py_CLEAR(self->original);
    Py_CLEAR(self->take);
    Py_CLEAR(self->running_loop);
    Py_CLEAR(self->probes);
    Py_CLEAR(self->wardens);
    Py_CLEAR(self->held);
    Py_CLEAR(self->last);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->guarded_loop);
    return 0;
}

/* The deallocator of every C wrapper: its weak references (where the type
 * takes them), then its members, through its own tp_clear. */
static void
wrapper_dealloc(PyObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    if (type->tp_weaklistoffset != 0 &&
        *(PyObject **)((char *)self + type->tp_weaklistoffset) != NULL) {
        PyObject_ClearWeakRefs(self);
    }
    type->tp_clear(self);
    type->tp_free(self);
}

/* `python_wrapper` and `__dict__`, the attributes every C wrapper has. The
 * Python wrapper is the type's `slow` member, found at the offset the getset
 * entry carries (its closure). */
static PyObject *
get_python_wrapper(PyObject *self, void *offset)
{
    PyObject *slow = *(PyObject **)((char *)self + (Py_ssize_t)offset);
    return Py_NewRef(slow != NULL ? slow : Py_None);
}

#define WRAPPER_GETSET(type)                                                                   \
    {                                                                                          \
        {"__dict__", PyObject_GenericGetDict, PyObject_GenericSetDict, NULL, NULL},            \
        {"python_wrapper", get_python_wrapper, NULL,                                           \
         "The Python wrapper: every call the C code does not decide, and what PySide6 "       \
         "connects.",                                                                          \
         (void *)offsetof(type, slow)},                                                        \
        {NULL},                                                                                \
    }

/* Binding (`f = obj.method`). A direct call `obj.method(...)` from Python never
 * binds (Py_TPFLAGS_METHOD_DESCRIPTOR: the interpreter calls this object with
 * obj first), but C callers do: `with lock:` looks `__enter__` up bound, print()
 * looks `write` up bound, asyncio's C Task and Future look `loop.call_soon` up
 * bound; so does every Python call with *args (`self.call_later(0, cb, *args)`
 * in qasync) and every method of an object whose class has its own
 * __getattribute__ (every QObject). So the lock, file/socket and asyncio
 * wrappers bind to themselves, keeping the C path there (bind_self). The
 * Handler.handle and dispatch-mark wrappers bind to their Python wrapper,
 * `slow` (bind_slow), which decides every call exactly as the C path does.
 * PySide6 takes the function of a bound method for a Python function and reads
 * its code, so connecting a signal to a bound method of a C object crashed the
 * interpreter: for the wrappers that bind to themselves,
 * loopwarden.qt.dispatch hands PySide6's connect() a bound method of the
 * Python wrapper instead. */
static PyObject *
bind_self(PyObject *self, PyObject *obj, PyObject *Py_UNUSED(type))
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self); /* looked up on the class */
    }
    return PyMethod_New(self, obj);
}

static PyObject *
bind_slow(PyObject *self, PyObject *slow, PyObject *obj)
{
    if (obj == NULL || obj == Py_None) {
        return Py_NewRef(self); /* looked up on the class */
    }
    if (slow == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "loopwarden wrapper used after it was cleared");
        return NULL;
    }
    return PyMethod_New(slow, obj);
}

static PyObject *
LockMethod_repr(LockMethod *self)
{
    return PyUnicode_FromFormat("<loopwarden lock wrapper of %R>", self->original);
}

static PyGetSetDef LockMethod_getset[] = WRAPPER_GETSET(LockMethod);

static PyMemberDef LockMethod_members[] = {
    {"raw_take", T_INT, offsetof(LockMethod, raw_take), READONLY,
     "1 where a free Lock is taken without the acquire call (FAST_LOCK_TAKE)."},
    {NULL},
};

static PyTypeObject LockMethod_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopwarden._speedups.LockMethod",
    .tp_doc = "The lock rules' wrapper: the off-loop and free-lock paths in C.",
    .tp_basicsize = sizeof(LockMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = LockMethod_new,
    .tp_dealloc = wrapper_dealloc,
    .tp_traverse = (traverseproc)LockMethod_traverse,
    .tp_clear = (inquiry)LockMethod_clear,
    .tp_vectorcall_offset = offsetof(LockMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = bind_self,
    .tp_repr = (reprfunc)LockMethod_repr,
    .tp_getset = LockMethod_getset,
    .tp_members = LockMethod_members,
    .tp_dictoffset = offsetof(LockMethod, dict),
    .tp_weaklistoffset = offsetof(LockMethod, weakreflist),
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
};

/* ---- StreamMethod: the file-object and socket rules' wrapper (loopwarden.console_streams) ----
 *
 * read/write/flush of io's file types are called by every thread, and on the
 * loop thread of a dev build mostly for the console: a print or a console log
 * line crosses three patched layers (TextIOWrapper, BufferedWriter, FileIO).
 * Here, in C:
 *  - off the loop (no running asyncio loop and no probe for this thread, or
 *    no active warden): the original;
 *  - on a guarded thread, a call on the console or one of its layers: the
 *    original. `console` is loopwarden.console_streams.state, [weak references
 *    to sys.stdout, sys.stderr and sys.stdin, frozenset of the layers' ids] as
 *    the Python side last computed it; if the streams in `sys_dict` are not
 *    those any more, the Python wrapper decides (and computes the state again);
 *  - for the socket methods (`check_timeout`, and no console), a call on a
 *    socket in non-blocking mode, which never waits: what every read and
 *    write of asyncio's transports is;
 *  - for logging's Handler.handle (`handler_kinds`, a Python method this
 *    time), a record for a handler that writes to no file, or to the console:
 *    every console log line of a dev build.
 * Every other call goes, unchanged, to the Python wrapper (`slow`).
 */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *original;     /* the method: C, or Handler.handle */
    PyObject *slow;         /* the Python wrapper: every other call */
    PyObject *running_loop; /* loopwarden.threads.running_loop */
    PyObject *probes;       /* dict: thread id -> probe of a guarded thread */
    PyObject *wardens;      /* list: the active wardens */
    PyObject *console;      /* list: [ref(stdout), ref(stderr), ref(stdin), frozenset]; or None */
    PyObject *sys_dict;     /* sys.__dict__ */
    PyObject *dict;         /* __dict__ */
    PyObject *handler_kinds; /* logging handlers: dict type -> True/False; NULL: a stream method */
    PyObject *weakreflist;  /* weakref.WeakMethod(selector.select) takes one of us */
    int check_timeout;      /* a socket method: gettimeout() == 0 never waits */
    int own_selector;       /* a selector or poll method: the running loop's own passes */
} StreamMethod;

static PyObject *str_stdout, *str_stderr, *str_stdin, *str_gettimeout, *str_stream;
static PyObject *str__selector; /* "_selector" */

/* getattr(obj, "_selector", None), a new reference; NULL with an error to raise
 * (what is not an Exception: a Ctrl-C in a property) or, error cleared, when
 * there is none or reading it failed (the Python wrapper then decides). */
static PyObject *
selector_of(PyObject *obj, int *failed)
{
    PyObject *selector = PyObject_GetAttr(obj, str__selector);
    if (selector == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            *failed = 1;
            return NULL;
        }
        PyErr_Clear();
    }
    return selector;
}

/* 1: `obj` is the running loop's selector, or the poll object inside it (what
 * the polling rules' skip_when, blocking.polling._loops_own, asks): asyncio's
 * loop calls both on every turn; 0: it is not, or not known here; -1: an error
 * for the caller. */
static int
loops_own_selector(PyObject *loop, PyObject *obj)
{
    int failed = 0;
    PyObject *own = selector_of(loop, &failed);
    if (own == NULL) {
        return failed ? -1 : 0;
    }
    if (own == Py_None) {
        Py_DECREF(own);
        return 0; /* `own is not None and ...` */
    }
    if (own == obj) {
        Py_DECREF(own);
        return 1;
    }
    PyObject *inner = selector_of(own, &failed);
    Py_DECREF(own);
    if (inner == NULL) {
        return failed ? -1 : 0;
    }
    int same = inner == obj;
    Py_DECREF(inner);
    return same;
}

/* 1: `sock` is in non-blocking mode (sock.gettimeout() == 0, what the socket
 * rules' skip_when asks); 0: it is not, or not known here; -1: gettimeout()
 * raised what is not an Exception (a KeyboardInterrupt in a Python override),
 * which goes to the caller as the Python wrapper lets it. */
static int
non_blocking_socket(PyObject *sock)
{
    PyObject *timeout = PyObject_CallMethodNoArgs(sock, str_gettimeout);
    if (timeout == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return -1;
        }
        PyErr_Clear(); /* not a socket after all: the Python wrapper decides */
        return 0;
    }
    int zero = 0;
    if (PyFloat_CheckExact(timeout)) {
        zero = PyFloat_AS_DOUBLE(timeout) == 0.0;
    }
    else if (PyLong_CheckExact(timeout)) {
        zero = PyObject_Not(timeout) == 1; /* an int is false only when 0 */
    }
    Py_DECREF(timeout);
    return zero;
}

#if PY_VERSION_HEX < 0x030C0000
/* The console state last found current (3.10, 3.11): the state list's four
 * items (the three weak references and the frozenset of ids, strong references,
 * so that no later object can have their addresses), the sys dict they were
 * checked against and that dict's version then (PEP 509: unique in the process,
 * new at every change). While the items and the version still match, sys.stdout,
 * sys.stderr and sys.stdin are the streams the references gave, so the three
 * lookups and reference reads are skipped: every console write crosses three
 * layers. Also the layers found in that set since (the streams, which sys holds,
 * hold them: their addresses are theirs), so a console write's later calls skip
 * the int and the set lookup too. ma_version_tag is deprecated from 3.12 on,
 * where the full test runs each time. */
#define CONSOLE_SEEN 4
static PyObject *console_checked[4];
static PyObject *console_checked_sys_dict; /* compared only */
static uint64_t console_checked_version;
static PyObject *console_seen[CONSOLE_SEEN]; /* compared only */

static int
console_state_checked(StreamMethod *self, PyObject *state, uint64_t version)
{
    if (self->sys_dict != console_checked_sys_dict || version != console_checked_version) {
        return 0;
    }
    for (int i = 0; i < 4; i++) {
        if (PyList_GET_ITEM(state, i) != console_checked[i]) {
            return 0;
        }
    }
    return 1;
}

static void
console_state_remember(StreamMethod *self, PyObject *state, uint64_t version)
{
    PyObject *old[4];
    for (int i = 0; i < 4; i++) {
        old[i] = console_checked[i];
        console_checked[i] = Py_NewRef(PyList_GET_ITEM(state, i));
    }
    console_checked_sys_dict = self->sys_dict;
    console_checked_version = version;
    memset(console_seen, 0, sizeof(console_seen));
    /* Last: whatever freeing the old items runs (they are the Python side's,
     * which a program may replace) finds the cache whole. */
    for (int i = 0; i < 4; i++) {
        Py_XDECREF(old[i]);
    }
}
#endif

/* 1: `stream` is the console or one of its layers, as the state says and the
 * state is current; 0: not, or not known here. Never an error. */
static int
console_layer(StreamMethod *self, PyObject *stream)
{
    PyObject *state = self->console;
    if (state == NULL || !PyList_CheckExact(state) || PyList_GET_SIZE(state) != 4) {
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    int cacheable = PyDict_CheckExact(self->sys_dict); /* (a subclass: the full test) */
    uint64_t version = cacheable ? ((PyDictObject *)self->sys_dict)->ma_version_tag : 0;
    if (cacheable && console_state_checked(self, state, version)) {
        for (int i = 0; i < CONSOLE_SEEN; i++) {
            if (console_seen[i] == stream) {
                return 1;
            }
        }
        goto look_up;
    }
#endif
    PyObject *names[3] = {str_stdout, str_stderr, str_stdin};
    for (int i = 0; i < 3; i++) {
        PyObject *current = PyDict_GetItemWithError(self->sys_dict, names[i]); /* borrowed */
        PyObject *ref = PyList_GET_ITEM(state, i);
        if (current == NULL || !PyWeakref_CheckRef(ref)) {
            PyErr_Clear();
            return 0; /* no stream, or one that takes no weak reference: Python decides */
        }
        /* A weak reference: this object must not be what keeps a stream alive,
         * or the stream would die with the io types at interpreter exit. */
#if PY_VERSION_HEX >= 0x030D0000
        PyObject *known = NULL;
        if (PyWeakref_GetRef(ref, &known) < 0) {
            PyErr_Clear();
            return 0;
        }
        Py_XDECREF(known); /* alive: `current` holds it; only the address is compared */
#else
        PyObject *known = PyWeakref_GetObject(ref); /* borrowed; None once dead */
#endif
        if (current != known || known == Py_None) {
            /* (A dead reference gives None, which sys.stdout may be too.) */
            return 0; /* replaced since (pytest's capture, a redirect): Python looks again */
        }
    }
#if PY_VERSION_HEX < 0x030C0000
    if (cacheable && PyFrozenSet_CheckExact(PyList_GET_ITEM(state, 3))) {
        console_state_remember(self, state, version);
        if (PyList_GET_SIZE(state) != 4) {
            return 0; /* what freeing the old items ran shortened the list: Python decides */
        }
    }
look_up:;
#endif
    PyObject *ids = PyList_GET_ITEM(state, 3);
    if (!PyFrozenSet_CheckExact(ids)) {
        return 0;
    }
    PyObject *key = PyLong_FromVoidPtr(stream); /* id(stream) */
    if (key == NULL) {
        PyErr_Clear();
        return 0;
    }
    int found = PySet_Contains(ids, key);
    Py_DECREF(key);
    if (found < 0) {
        PyErr_Clear();
        return 0;
    }
#if PY_VERSION_HEX < 0x030C0000
    if (found && ids == console_checked[3]) {
        for (int i = 0; i < CONSOLE_SEEN; i++) {
            if (console_seen[i] == NULL) {
                console_seen[i] = stream;
                break;
            }
        }
    }
#endif
    return found;
}

/* For Handler.handle: 1 when the handler's records cannot reach a file, by
 * the kind the Python side recorded for its type (handler_kinds: False, it
 * writes to no file at all; True, a StreamHandler, whose stream is then the
 * console or one of its layers); 0: not known here; -1: reading `stream` raised
 * what is not an Exception (a KeyboardInterrupt in a property), for the caller. */
static int
handler_on_console(StreamMethod *self, PyObject *handler)
{
    PyObject *kind = PyDict_GetItemWithError(self->handler_kinds, (PyObject *)Py_TYPE(handler));
    if (kind == NULL) {
        if (PyErr_Occurred()) {
            if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                return -1; /* a Ctrl-C in a metaclass's __eq__: the caller's */
            }
            PyErr_Clear();
        }
        return 0; /* a kind not seen yet: the Python wrapper records it */
    }
    if (kind == Py_False) {
        return 1;
    }
    if (kind != Py_True) {
        return 0;
    }
    PyObject *stream = PyObject_GetAttr(handler, str_stream);
    if (stream == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_Exception)) {
            return -1;
        }
        PyErr_Clear();
        return 0;
    }
    int on_console = console_layer(self, stream);
    Py_DECREF(stream);
    return on_console;
}

static PyObject *
StreamMethod_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    StreamMethod *self = (StreamMethod *)op;
    if (self->slow == NULL) {
        /* Only the garbage collector clears one: never crash a call that still reaches it. */
        PyErr_SetString(PyExc_RuntimeError, "loopwarden stream wrapper used after it was cleared");
        return NULL;
    }
    PyObject *loop = ask_running_loop(self->running_loop);
    if (loop == NULL) {
        return NULL;
    }
    int loop_runs = loop != Py_None;
    if (loop_runs && self->own_selector && PyVectorcall_NARGS(nargsf) > 0) {
        /* Before anything else, as the Python wrapper's skip_when: every loop turn. */
        int own = loops_own_selector(loop, args[0]);
        Py_DECREF(loop);
        if (own < 0) {
            return NULL;
        }
        if (own) {
            return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
        }
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
    }
    Py_DECREF(loop);
    if (!loop_runs) {
        if (PyDict_GET_SIZE(self->probes) == 0) {
            return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
        }
        PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
        if (ident == NULL) {
            return NULL;
        }
        int probed = PyDict_Contains(self->probes, ident);
        Py_DECREF(ident);
        if (probed == 0) {
            return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
        }
        PyErr_Clear(); /* probed, or an error: the Python wrapper decides */
    }
    if (self->own_selector) {
        return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
    }
    if (PyList_GET_SIZE(self->wardens) == 0) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    if (PyVectorcall_NARGS(nargsf) > 0) {
        int skip = self->handler_kinds != NULL ? handler_on_console(self, args[0])
                                               : console_layer(self, args[0]);
        if (skip < 0) {
            return NULL;
        }
        if (!skip && self->check_timeout) {
            skip = non_blocking_socket(args[0]);
            if (skip < 0) {
                return NULL;
            }
        }
        if (skip) {
            return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
        }
    }
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static PyObject *
StreamMethod_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"original",      "slow",          "running_loop", "probes",
                            "wardens",       "console",       "sys_dict",     "check_timeout",
                            "handler_kinds", "own_selector",  NULL};
    PyObject *original, *slow, *running_loop, *probes, *wardens, *console, *sys_dict;
    PyObject *handler_kinds = Py_None;
    int check_timeout, own_selector = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOO!O!OO!p|Op:StreamMethod", names,
                                     &original, &slow, &running_loop, &PyDict_Type, &probes,
                                     &PyList_Type, &wardens, &console, &PyDict_Type, &sys_dict,
                                     &check_timeout, &handler_kinds, &own_selector)) {
        return NULL;
    }
    if (console != Py_None && !PyList_CheckExact(console)) {
        PyErr_SetString(PyExc_TypeError, "console must be a list or None");
        return NULL;
    }
    if (handler_kinds != Py_None && !PyDict_CheckExact(handler_kinds)) {
        PyErr_SetString(PyExc_TypeError, "handler_kinds must be a dict or None");
        return NULL;
    }
    if (!PyCallable_Check(original) || !PyCallable_Check(slow) ||
        !PyCallable_Check(running_loop)) {
        PyErr_SetString(PyExc_TypeError, "original, slow and running_loop must be callable");
        return NULL;
    }
    StreamMethod *self = (StreamMethod *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = StreamMethod_vectorcall;
    self->original = Py_NewRef(original);
    self->slow = Py_NewRef(slow);
    self->running_loop = Py_NewRef(running_loop);
    self->probes = Py_NewRef(probes);
    self->wardens = Py_NewRef(wardens);
    self->console = console == Py_None ? NULL : Py_NewRef(console);
    self->sys_dict = Py_NewRef(sys_dict);
    self->dict = NULL;
    self->weakreflist = NULL;
    self->handler_kinds = handler_kinds == Py_None ? NULL : Py_NewRef(handler_kinds);
    self->check_timeout = check_timeout;
    self->own_selector = own_selector;
    return (PyObject *)self;
}

static int
StreamMethod_traverse(StreamMethod *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->slow);
    Py_VISIT(self->running_loop);
    Py_VISIT(self->probes);
    Py_VISIT(self->wardens);
    Py_VISIT(self->console);
    Py_VISIT(self->sys_dict);
    Py_VISIT(self->dict);
    Py_VISIT(self->handler_kinds);
    return 0;
}

static int
StreamMethod_clear(StreamMethod *self)
{
    /* `slow` first: the vectorcall tests it before using the others. */
    Py_CLEAR(self->slow);
    Py_CLEAR(self->original);
    Py_CLEAR(self->running_loop);
    Py_CLEAR(self->probes);
    Py_CLEAR(self->wardens);
    Py_CLEAR(self->console);
    Py_CLEAR(self->sys_dict);
    Py_CLEAR(self->dict);
    Py_CLEAR(self->handler_kinds);
    return 0;
}

static PyObject *
StreamMethod_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    StreamMethod *method = (StreamMethod *)self;
    if (method->handler_kinds != NULL) {
        return bind_slow(self, method->slow, obj); /* Handler.handle: called from Python */
    }
    return bind_self(self, obj, type); /* print() and C code look write/flush up bound */
}

static PyObject *
StreamMethod_repr(StreamMethod *self)
{
    return PyUnicode_FromFormat("<loopwarden stream wrapper of %R>", self->original);
}

static PyGetSetDef StreamMethod_getset[] = WRAPPER_GETSET(StreamMethod);

static PyTypeObject StreamMethod_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopwarden._speedups.StreamMethod",
    .tp_doc = "The file-object rules' wrapper: the off-loop and console paths in C.",
    .tp_basicsize = sizeof(StreamMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = StreamMethod_new,
    .tp_dealloc = wrapper_dealloc,
    .tp_traverse = (traverseproc)StreamMethod_traverse,
    .tp_clear = (inquiry)StreamMethod_clear,
    .tp_vectorcall_offset = offsetof(StreamMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = StreamMethod_descr_get,
    .tp_repr = (reprfunc)StreamMethod_repr,
    .tp_getset = StreamMethod_getset,
    .tp_dictoffset = offsetof(StreamMethod, dict),
    .tp_weaklistoffset = offsetof(StreamMethod, weakreflist),
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
};

/* ---- MarkMethod: the Qt dispatch marks (loopwarden.qt.dispatch) ----
 *
 * Qt entry points that run event handlers synchronously (SignalInstance.emit,
 * QAbstractButton.click, QTest's input helpers...) are marked while they run on
 * the GUI thread, so that a slot they run counts as event-loop code. emit is
 * called for every signal of an app: here the mark costs a thread-id test off
 * the GUI thread, and on it a list append and pop around the original, with no
 * bytecode between them (a Ctrl-C can arrive only before or after). */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *original; /* the C method or function */
    PyObject *name;     /* the entry point's name: what the mark says */
    PyObject *marks;    /* dispatch.state: .gui_thread is the GUI thread's id or None */
    PyObject *entries;  /* dispatch.state.entries: the marks of the GUI thread */
    PyObject *slow;     /* the Python mark: what a bound method calls */
    PyObject *dict;     /* __dict__ */
} MarkMethod;

static PyObject *str_gui_thread; /* "gui_thread" */

static PyObject *
MarkMethod_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    MarkMethod *self = (MarkMethod *)op;
    if (self->original == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "loopwarden dispatch mark used after it was cleared");
        return NULL;
    }
    PyObject *gui = PyObject_GetAttr(self->marks, str_gui_thread);
    if (gui == NULL) {
        return NULL; /* as `marks.gui_thread` in the Python wrapper */
    }
    int on_gui_thread = 0;
    if (PyLong_CheckExact(gui)) {
        unsigned long ident = PyLong_AsUnsignedLong(gui);
        if (ident == (unsigned long)-1 && PyErr_Occurred()) {
            PyErr_Clear(); /* not a thread id: no thread is it */
        }
        else {
            on_gui_thread = ident == PyThread_get_thread_ident();
        }
    }
    Py_DECREF(gui);
    if (!on_gui_thread) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    if (PyList_Append(self->entries, self->name) < 0) {
        return NULL;
    }
    PyObject *result = PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    /* entries.pop(), keeping the original's exception if it raised. */
    PyObject *type, *value, *traceback;
    PyErr_Fetch(&type, &value, &traceback);
    Py_ssize_t size = PyList_GET_SIZE(self->entries);
    if (size > 0 && PyList_SetSlice(self->entries, size - 1, size, NULL) < 0) {
        PyErr_Clear(); /* cannot fail when shrinking; never mask the call's outcome */
    }
    PyErr_Restore(type, value, traceback);
    return result;
}

static PyObject *
MarkMethod_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"original", "name", "marks", "entries", "slow", NULL};
    PyObject *original, *name, *marks, *entries, *slow;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OUOO!O:MarkMethod", names, &original, &name,
                                     &marks, &PyList_Type, &entries, &slow)) {
        return NULL;
    }
    if (!PyCallable_Check(original) || !PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "original and slow must be callable");
        return NULL;
    }
    MarkMethod *self = (MarkMethod *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = MarkMethod_vectorcall;
    self->original = Py_NewRef(original);
    self->name = Py_NewRef(name);
    self->marks = Py_NewRef(marks);
    self->entries = Py_NewRef(entries);
    self->slow = Py_NewRef(slow);
    self->dict = NULL;
    return (PyObject *)self;
}

static int
MarkMethod_traverse(MarkMethod *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->name);
    Py_VISIT(self->marks);
    Py_VISIT(self->entries);
    Py_VISIT(self->slow);
    Py_VISIT(self->dict);
    return 0;
}

static int
MarkMethod_clear(MarkMethod *self)
{
    Py_CLEAR(self->original);
    Py_CLEAR(self->name);
    Py_CLEAR(self->marks);
    Py_CLEAR(self->entries);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->dict);
    return 0;
}

static PyObject *
MarkMethod_descr_get(PyObject *self, PyObject *obj, PyObject *type)
{
    return bind_slow(self, ((MarkMethod *)self)->slow, obj);
}

static PyObject *
MarkMethod_repr(MarkMethod *self)
{
    return PyUnicode_FromFormat("<loopwarden dispatch mark of %R>", self->original);
}

static PyGetSetDef MarkMethod_getset[] = WRAPPER_GETSET(MarkMethod);

static PyTypeObject MarkMethod_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopwarden._speedups.MarkMethod",
    .tp_doc = "A Qt entry point's dispatch mark: the GUI-thread test and the mark in C.",
    .tp_basicsize = sizeof(MarkMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = MarkMethod_new,
    .tp_dealloc = wrapper_dealloc,
    .tp_traverse = (traverseproc)MarkMethod_traverse,
    .tp_clear = (inquiry)MarkMethod_clear,
    .tp_vectorcall_offset = offsetof(MarkMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = MarkMethod_descr_get,
    .tp_repr = (reprfunc)MarkMethod_repr,
    .tp_getset = MarkMethod_getset,
    .tp_dictoffset = offsetof(MarkMethod, dict),
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
};

/* ---- LoopMethod: the asyncio thread-affinity checks (loopwarden.affinity.checks) ----
 *
 * Methods of asyncio loops and of loop-bound objects (futures, transports,
 * queues, events...) must be called on the thread that runs the loop. On that
 * thread, the common case, the Python wrapper reads `self._loop` (or takes the
 * loop itself) and compares it with this thread's running loop; here that is
 * done in C and the original runs with no Python frame of ours. A loop-bound
 * object with no loop yet (`_loop` is None) is free to use anywhere, as there;
 * reading `_loop` raises here what it raises there. Every other call (another
 * thread, no arguments) goes, unchanged,
 * to the Python wrapper (`slow`), which decides and reports. */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *original;     /* the method */
    PyObject *slow;         /* the Python wrapper: every other call */
    PyObject *running_loop; /* loopwarden.threads.running_loop */
    PyObject *dict;         /* __dict__ */
    PyObject *weakreflist;  /* weakref.WeakMethod(queue.put_nowait) takes one of us */
    int bound;              /* 1: self._loop is the loop; 0: self is */
} LoopMethod;

static PyObject *str__loop; /* "_loop" */

static PyObject *
LoopMethod_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    LoopMethod *self = (LoopMethod *)op;
    if (self->slow == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "loopwarden loop wrapper used after it was cleared");
        return NULL;
    }
    if (PyVectorcall_NARGS(nargsf) == 0) {
        goto slow;
    }
    PyObject *loop;
    if (self->bound) {
        loop = PyObject_GetAttr(args[0], str__loop);
        if (loop == NULL) {
            return NULL; /* as `self._loop` raises in the Python wrapper (no _loop, a Ctrl-C) */
        }
        if (loop == Py_None) {
            Py_DECREF(loop);
            return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
        }
    }
    else {
        loop = Py_NewRef(args[0]);
    }
    PyObject *running = ask_running_loop(self->running_loop);
    if (running == NULL) {
        Py_DECREF(loop);
        return NULL;
    }
    int here = running == loop;
    Py_DECREF(running);
    Py_DECREF(loop);
    if (here) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
slow:
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static PyObject *
LoopMethod_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"original", "slow", "running_loop", "bound", NULL};
    PyObject *original, *slow, *running_loop;
    int bound;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOOp:LoopMethod", names, &original, &slow,
                                     &running_loop, &bound)) {
        return NULL;
    }
    if (!PyCallable_Check(original) || !PyCallable_Check(slow) ||
        !PyCallable_Check(running_loop)) {
        PyErr_SetString(PyExc_TypeError, "original, slow and running_loop must be callable");
        return NULL;
    }
    LoopMethod *self = (LoopMethod *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = LoopMethod_vectorcall;
    self->original = Py_NewRef(original);
    self->slow = Py_NewRef(slow);
    self->running_loop = Py_NewRef(running_loop);
    self->dict = NULL;
    self->weakreflist = NULL;
    self->bound = bound;
    return (PyObject *)self;
}

static int
LoopMethod_traverse(LoopMethod *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->slow);
    Py_VISIT(self->running_loop);
    Py_VISIT(self->dict);
    return 0;
}

static int
LoopMethod_clear(LoopMethod *self)
{
    /* `slow` first: the vectorcall tests it before using the others. */
    Py_CLEAR(self->slow);
    Py_CLEAR(self->original);
    Py_CLEAR(self->running_loop);
    Py_CLEAR(self->dict);
    return 0;
}

static PyObject *
LoopMethod_repr(LoopMethod *self)
{
    return PyUnicode_FromFormat("<loopwarden loop wrapper of %R>", self->original);
}

static PyGetSetDef LoopMethod_getset[] = WRAPPER_GETSET(LoopMethod);

static PyTypeObject LoopMethod_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopwarden._speedups.LoopMethod",
    .tp_doc = "An asyncio thread-affinity check: the call on the loop's own thread in C.",
    .tp_basicsize = sizeof(LoopMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = LoopMethod_new,
    .tp_dealloc = wrapper_dealloc,
    .tp_traverse = (traverseproc)LoopMethod_traverse,
    .tp_clear = (inquiry)LoopMethod_clear,
    .tp_vectorcall_offset = offsetof(LoopMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = bind_self,
    .tp_repr = (reprfunc)LoopMethod_repr,
    .tp_getset = LoopMethod_getset,
    .tp_dictoffset = offsetof(LoopMethod, dict),
    .tp_weaklistoffset = offsetof(LoopMethod, weakreflist),
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
};

/* ---- OwnerMethod: QObject methods Qt allows only from the object's own thread ----
 *
 * (loopwarden.affinity.checks.qobject_owned.) An event loop's own QObjects,
 * such as qasync's timer whose startTimer and killTimer run at every loop
 * turn, are never checked: the Python wrapper records that verdict per class
 * in `verdicts`, and here a call on an instance of a class recorded True runs
 * the original with no Python frame of ours. Every other call goes, unchanged,
 * to the Python wrapper (`slow`), which asks Qt for the threads and reports. */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *original;    /* the method */
    PyObject *slow;        /* the Python wrapper: every other call */
    PyObject *verdicts;    /* dict: class -> True (an event loop's own QObject) or False */
    PyObject *dict;        /* __dict__ */
    PyObject *weakreflist; /* as LoopMethod's */
} OwnerMethod;

static PyObject *
OwnerMethod_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    OwnerMethod *self = (OwnerMethod *)op;
    if (self->slow == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "loopwarden QObject wrapper used after it was cleared");
        return NULL;
    }
    if (PyVectorcall_NARGS(nargsf) > 0) {
        /* Borrowed. The keys are classes, which hash and compare by identity
         * (as `verdicts.get(type(obj))` there), so no Python code runs here. */
        PyObject *own = PyDict_GetItemWithError(self->verdicts, (PyObject *)Py_TYPE(args[0]));
        if (own == Py_True) {
            return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
        }
        if (own == NULL && PyErr_Occurred()) {
            return NULL;
        }
    }
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static PyObject *
OwnerMethod_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"original", "slow", "verdicts", NULL};
    PyObject *original, *slow, *verdicts;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOO!:OwnerMethod", names, &original, &slow,
                                     &PyDict_Type, &verdicts)) {
        return NULL;
    }
    if (!PyCallable_Check(original) || !PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "original and slow must be callable");
        return NULL;
    }
    OwnerMethod *self = (OwnerMethod *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = OwnerMethod_vectorcall;
    self->original = Py_NewRef(original);
    self->slow = Py_NewRef(slow);
    self->verdicts = Py_NewRef(verdicts);
    self->dict = NULL;
    self->weakreflist = NULL;
    return (PyObject *)self;
}

static int
OwnerMethod_traverse(OwnerMethod *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->slow);
    Py_VISIT(self->verdicts);
    Py_VISIT(self->dict);
    return 0;
}

static int
OwnerMethod_clear(OwnerMethod *self)
{
    /* `slow` first: the vectorcall tests it before using the others. */
    Py_CLEAR(self->slow);
    Py_CLEAR(self->original);
    Py_CLEAR(self->verdicts);
    Py_CLEAR(self->dict);
    return 0;
}

static PyObject *
OwnerMethod_repr(OwnerMethod *self)
{
    return PyUnicode_FromFormat("<loopwarden QObject wrapper of %R>", self->original);
}

static PyGetSetDef OwnerMethod_getset[] = WRAPPER_GETSET(OwnerMethod);

static PyTypeObject OwnerMethod_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopwarden._speedups.OwnerMethod",
    .tp_doc = "A QObject thread-affinity check: an event loop's own QObjects pass in C.",
    .tp_basicsize = sizeof(OwnerMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = OwnerMethod_new,
    .tp_dealloc = wrapper_dealloc,
    .tp_traverse = (traverseproc)OwnerMethod_traverse,
    .tp_clear = (inquiry)OwnerMethod_clear,
    .tp_vectorcall_offset = offsetof(OwnerMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = bind_self,
    .tp_repr = (reprfunc)OwnerMethod_repr,
    .tp_getset = OwnerMethod_getset,
    .tp_dictoffset = offsetof(OwnerMethod, dict),
    .tp_weaklistoffset = offsetof(OwnerMethod, weakreflist),
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
};

/* ---- ScheduleMethod: the scheduling-site wrap (loopwarden.scheduling) ----
 *
 * loop.call_soon, call_later, call_at, call_soon_threadsafe and
 * Future.add_done_callback replace a callback that is not user code with a
 * trampoline naming the scheduling site, on a guarded thread while a warden
 * is active. Nearly every call is asyncio's own: a Task's step or wake-up,
 * or a callback that already is a trampoline (qasync's call_soon calls
 * call_later with it). Here every call the Python wrapper (`slow`) would pass
 * through untouched is passed through with no Python frame of ours: no warden,
 * too few arguments, a thread that is not guarded, or a callback that needs
 * no site by the rules of scheduling._needs_site. Every other call goes,
 * unchanged, to the Python wrapper, which decides again. */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *original;        /* the scheduler */
    PyObject *slow;            /* the Python wrapper: every other call */
    PyObject *wardens;         /* list: the active wardens */
    PyObject *running_loop;    /* loopwarden.threads.running_loop */
    PyObject *probes;          /* dict: thread id -> probe of a guarded thread */
    PyObject *plain;           /* tuple: callables that are never user code */
    PyObject *futures;         /* tuple: a builtin bound to one of these is asyncio's own */
    PyObject *code_info;       /* dict: code -> loopwarden.frames.FrameInfo */
    PyObject *site_categories; /* frozenset: the categories whose callbacks need a site */
    PyObject *dict;            /* __dict__ */
    PyObject *weakreflist;     /* as LoopMethod's */
    Py_ssize_t position;       /* the callback's index in the positional arguments (>= 1) */
} ScheduleMethod;

static PyObject *str_category; /* "category" */
static PyTypeObject ScheduleMethod_Type; /* below: may_need_site knows its own kind */

/* An error while deciding: an Exception is left for the Python wrapper to meet
 * again (1: undecided), anything else (a Ctrl-C) is raised (-1). */
static int
undecided(void)
{
    if (!PyErr_ExceptionMatches(PyExc_Exception)) {
        return -1;
    }
    PyErr_Clear();
    return 1;
}

/* 0: `callback` needs no site (scheduling._needs_site is False); 1: it may, or
 * this cannot tell: the Python wrapper decides; -1: an error to raise is set. */
static int
may_need_site(ScheduleMethod *self, PyObject *callback)
{
    if (PyMethod_Check(callback)) {
        callback = PyMethod_GET_FUNCTION(callback);
        PyTypeObject *kind = Py_TYPE(callback);
        if (kind == &LockMethod_Type || kind == &StreamMethod_Type || kind == &MarkMethod_Type ||
            kind == &LoopMethod_Type || kind == &OwnerMethod_Type ||
            kind == &ScheduleMethod_Type) {
            /* A bound method of one of us (`future.set_result`): its Python
             * wrapper's frames are hidden, so the callback needs a site, as
             * scheduling._needs_site decides there. */
            return 1;
        }
    }
    if (PyFunction_Check(callback)) {
        PyObject *info = PyDict_GetItemWithError(self->code_info,
                                                 PyFunction_GET_CODE(callback)); /* borrowed */
        if (info == NULL) {
            return PyErr_Occurred() ? undecided() : 1; /* not classified yet: there */
        }
        Py_INCREF(info); /* held while its attribute is read */
        PyObject *category = PyObject_GetAttr(info, str_category);
        Py_DECREF(info);
        if (category == NULL) {
            return undecided();
        }
        int contained = PySet_Contains(self->site_categories, category);
        Py_DECREF(category);
        return contained < 0 ? undecided() : contained;
    }
    int plain = PyObject_IsInstance(callback, self->plain);
    if (plain < 0) {
        return undecided();
    }
    if (plain == 0) {
        return 0; /* a callable object, a Task step, a trampoline: left alone */
    }
    if (PyCFunction_Check(callback)) {
        /* A Task's wake-up is a builtin bound to the Task: asyncio's own business. */
        PyObject *owner = PyCFunction_GET_SELF(callback);
        if (owner != NULL && !PyModule_Check(owner)) {
            int future = PyObject_IsInstance(owner, self->futures);
            return future < 0 ? undecided() : !future;
        }
    }
    return 1; /* a builtin function, a partial...: there */
}

static PyObject *
ScheduleMethod_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    ScheduleMethod *self = (ScheduleMethod *)op;
    if (self->slow == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "loopwarden scheduling wrap used after it was cleared");
        return NULL;
    }
    if (PyList_GET_SIZE(self->wardens) == 0 || PyVectorcall_NARGS(nargsf) <= self->position) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    PyObject *loop = ask_running_loop(self->running_loop);
    if (loop == NULL) {
        return NULL;
    }
    int loop_runs = loop != Py_None;
    Py_DECREF(loop);
    if (!loop_runs) {
        if (PyDict_GET_SIZE(self->probes) == 0) {
            return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
        }
        PyObject *ident = PyLong_FromUnsignedLong(PyThread_get_thread_ident());
        if (ident == NULL) {
            return NULL;
        }
        int probed = PyDict_Contains(self->probes, ident);
        Py_DECREF(ident);
        if (probed == 0) {
            return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
        }
        PyErr_Clear(); /* probed, or an error: the Python wrapper decides */
    }
    int maybe = may_need_site(self, args[self->position]);
    if (maybe == 0) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames);
    }
    if (maybe < 0) {
        return NULL;
    }
    return PyObject_Vectorcall(self->slow, args, nargsf, kwnames);
}

static PyObject *
ScheduleMethod_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"original",  "slow",      "position",        "wardens",
                            "running_loop", "probes", "plain",           "futures",
                            "code_info", "site_categories", NULL};
    PyObject *original, *slow, *wardens, *running_loop, *probes, *plain, *futures, *code_info,
        *site_categories;
    Py_ssize_t position;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OOnO!OO!O!O!O!O!:ScheduleMethod", names,
                                     &original, &slow, &position, &PyList_Type, &wardens,
                                     &running_loop, &PyDict_Type, &probes, &PyTuple_Type, &plain,
                                     &PyTuple_Type, &futures, &PyDict_Type, &code_info,
                                     &PyFrozenSet_Type, &site_categories)) {
        return NULL;
    }
    if (!PyCallable_Check(original) || !PyCallable_Check(slow) ||
        !PyCallable_Check(running_loop)) {
        PyErr_SetString(PyExc_TypeError, "original, slow and running_loop must be callable");
        return NULL;
    }
    if (position < 1) {
        PyErr_SetString(PyExc_ValueError, "position counts self: at least 1");
        return NULL;
    }
    ScheduleMethod *self = (ScheduleMethod *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = ScheduleMethod_vectorcall;
    self->original = Py_NewRef(original);
    self->slow = Py_NewRef(slow);
    self->wardens = Py_NewRef(wardens);
    self->running_loop = Py_NewRef(running_loop);
    self->probes = Py_NewRef(probes);
    self->plain = Py_NewRef(plain);
    self->futures = Py_NewRef(futures);
    self->code_info = Py_NewRef(code_info);
    self->site_categories = Py_NewRef(site_categories);
    self->dict = NULL;
    self->weakreflist = NULL;
    self->position = position;
    return (PyObject *)self;
}

static int
ScheduleMethod_traverse(ScheduleMethod *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->slow);
    Py_VISIT(self->wardens);
    Py_VISIT(self->running_loop);
    Py_VISIT(self->probes);
    Py_VISIT(self->plain);
    Py_VISIT(self->futures);
    Py_VISIT(self->code_info);
    Py_VISIT(self->site_categories);
    Py_VISIT(self->dict);
    return 0;
}

static int
ScheduleMethod_clear(ScheduleMethod *self)
{
    /* `slow` first: the vectorcall tests it before using the others. */
    Py_CLEAR(self->slow);
    Py_CLEAR(self->original);
    Py_CLEAR(self->wardens);
    Py_CLEAR(self->running_loop);
    Py_CLEAR(self->probes);
    Py_CLEAR(self->plain);
    Py_CLEAR(self->futures);
    Py_CLEAR(self->code_info);
    Py_CLEAR(self->site_categories);
    Py_CLEAR(self->dict);
    return 0;
}

static PyObject *
ScheduleMethod_repr(ScheduleMethod *self)
{
    return PyUnicode_FromFormat("<loopwarden scheduling wrap of %R>", self->original);
}

static PyGetSetDef ScheduleMethod_getset[] = WRAPPER_GETSET(ScheduleMethod);

static PyTypeObject ScheduleMethod_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopwarden._speedups.ScheduleMethod",
    .tp_doc = "The scheduling-site wrap: callbacks that need no site pass in C.",
    .tp_basicsize = sizeof(ScheduleMethod),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = ScheduleMethod_new,
    .tp_dealloc = wrapper_dealloc,
    .tp_traverse = (traverseproc)ScheduleMethod_traverse,
    .tp_clear = (inquiry)ScheduleMethod_clear,
    .tp_vectorcall_offset = offsetof(ScheduleMethod, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = bind_self,
    .tp_repr = (reprfunc)ScheduleMethod_repr,
    .tp_getset = ScheduleMethod_getset,
    .tp_dictoffset = offsetof(ScheduleMethod, dict),
    .tp_weaklistoffset = offsetof(ScheduleMethod, weakreflist),
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
};

/* ---- InstanceHook: the __getattribute__ of a Shiboken class (loopwarden.registry) ----
 *
 * For a Shiboken name with static and instance overloads (QFile.exists,
 * QMenu.exec), instance access binds from Shiboken's C method table, past the
 * patched class attribute, so the registry wraps the class's __getattribute__.
 * That hook must call the original with no Python frame of ours on top:
 * PySide6's feature selection (`from __feature__ import snake_case`) picks the
 * class's namespace by the module of the *running Python frame*, so a Python
 * hook made `f.read_all()` raise AttributeError in a snake_case module, as if
 * loopwarden's module had asked. Here the original runs under the caller's
 * frame; only a name in the table (one of the rules' names, whose value is
 * callable) goes on to `make(rule, value, obj)`, in Python. */

typedef struct {
    PyObject_HEAD
    vectorcallfunc vectorcall;
    PyObject *original;    /* the class's own __getattribute__ (a slot wrapper) */
    PyObject *table;       /* dict: attribute name -> rule */
    PyObject *make;        /* make(rule, value, obj): the wrapped bound method */
    PyObject *slow;        /* the Python hook (python_wrapper; pure-Python twin) */
    PyObject *dict;        /* __dict__ */
    PyObject *weakreflist; /* as LoopMethod's */
} InstanceHook;

static PyObject *
InstanceHook_vectorcall(PyObject *op, PyObject *const *args, size_t nargsf, PyObject *kwnames)
{
    InstanceHook *self = (InstanceHook *)op;
    if (self->make == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "loopwarden attribute hook used after it was cleared");
        return NULL;
    }
    if (PyVectorcall_NARGS(nargsf) != 2 || kwnames != NULL) {
        return PyObject_Vectorcall(self->original, args, nargsf, kwnames); /* its own error */
    }
    PyObject *value = PyObject_Vectorcall(self->original, args, 2, NULL);
    if (value == NULL) {
        return NULL;
    }
    PyObject *rule = PyUnicode_CheckExact(args[1])
                         ? PyDict_GetItemWithError(self->table, args[1]) /* borrowed */
                         : NULL;
    if (rule == NULL) {
        if (PyErr_Occurred()) {
            Py_DECREF(value);
            return NULL;
        }
        return value;
    }
    if (!PyCallable_Check(value)) {
        return value;
    }
    Py_INCREF(rule); /* the table may change while make runs */
    PyObject *made = PyObject_CallFunctionObjArgs(self->make, rule, value, args[0], NULL);
    Py_DECREF(rule);
    Py_DECREF(value);
    return made;
}

static PyObject *
InstanceHook_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"original", "table", "make", "slow", NULL};
    PyObject *original, *table, *make, *slow;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "OO!OO:InstanceHook", names, &original,
                                     &PyDict_Type, &table, &make, &slow)) {
        return NULL;
    }
    if (!PyCallable_Check(original) || !PyCallable_Check(make) || !PyCallable_Check(slow)) {
        PyErr_SetString(PyExc_TypeError, "original, make and slow must be callable");
        return NULL;
    }
    InstanceHook *self = (InstanceHook *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->vectorcall = InstanceHook_vectorcall;
    self->original = Py_NewRef(original);
    self->table = Py_NewRef(table);
    self->make = Py_NewRef(make);
    self->slow = Py_NewRef(slow);
    self->dict = NULL;
    self->weakreflist = NULL;
    return (PyObject *)self;
}

static int
InstanceHook_traverse(InstanceHook *self, visitproc visit, void *arg)
{
    Py_VISIT(self->original);
    Py_VISIT(self->table);
    Py_VISIT(self->make);
    Py_VISIT(self->slow);
    Py_VISIT(self->dict);
    return 0;
}

static int
InstanceHook_clear(InstanceHook *self)
{
    /* `make` first: the vectorcall tests it before using the others. */
    Py_CLEAR(self->make);
    Py_CLEAR(self->original);
    Py_CLEAR(self->table);
    Py_CLEAR(self->slow);
    Py_CLEAR(self->dict);
    return 0;
}

static PyObject *
InstanceHook_repr(InstanceHook *self)
{
    return PyUnicode_FromFormat("<loopwarden attribute hook of %R>", self->original);
}

static PyGetSetDef InstanceHook_getset[] = WRAPPER_GETSET(InstanceHook);

static PyTypeObject InstanceHook_Type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "loopwarden._speedups.InstanceHook",
    .tp_doc = "A Shiboken class's __getattribute__ that runs the original under the caller's frame.",
    .tp_basicsize = sizeof(InstanceHook),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_HAVE_VECTORCALL |
                Py_TPFLAGS_METHOD_DESCRIPTOR,
    .tp_new = InstanceHook_new,
    .tp_dealloc = wrapper_dealloc,
    .tp_traverse = (traverseproc)InstanceHook_traverse,
    .tp_clear = (inquiry)InstanceHook_clear,
    .tp_vectorcall_offset = offsetof(InstanceHook, vectorcall),
    .tp_call = PyVectorcall_Call,
    .tp_descr_get = bind_self,
    .tp_repr = (reprfunc)InstanceHook_repr,
    .tp_getset = InstanceHook_getset,
    .tp_dictoffset = offsetof(InstanceHook, dict),
    .tp_weaklistoffset = offsetof(InstanceHook, weakreflist),
    .tp_getattro = PyObject_GenericGetAttr,
    .tp_setattro = PyObject_GenericSetAttr,
};

/* ---- Writing and taking off a recorded list of patches (loopwarden.registry) ----
 *
 * A guard cycle writes some 340-600 attributes and puts them back. The
 * registry's replay (an install that writes exactly what the last one wrote)
 * hands the whole list over here: one C loop per direction instead of a
 * Python loop of setattr calls, and no bytecode of this thread between two
 * writes, so a signal handler (Ctrl-C) runs only before or after the loop.
 * Each step is (namespace, owner, name, original, replacement, real_dict):
 * namespace is what the current value is read from (a dict or a class's
 * mappingproxy), real_dict the built-in type's real __dict__ written directly
 * (loopwarden.patching), (dict,) for a Shiboken class's plain namespace
 * (written directly while it is the class's dict), or None for a setattr. The journal rules stay those of
 * loopwarden.patching: a patch is appended before it is written and popped
 * after it was taken off, and a built-in type joins `stale` before its dict is
 * written; `stale` is flushed (PyType_Modified) before returning. An error
 * (a class's own __setattr__ failing) leaves the journal true and is raised.
 */

/* The value `namespace` holds for `name`, a new reference; missing_sentinel if
 * none; NULL with an exception set on error. */
static PyObject *
current_value(PyObject *namespace, PyObject *name, PyObject *missing)
{
    PyObject *value;
    if (PyDict_Check(namespace)) {
        value = PyDict_GetItemWithError(namespace, name);
        if (value == NULL) {
            return PyErr_Occurred() ? NULL : Py_NewRef(missing);
        }
        return Py_NewRef(value);
    }
    value = PyObject_GetItem(namespace, name);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_KeyError)) {
        PyErr_Clear();
        return Py_NewRef(missing);
    }
    return value;
}

/* The namespace a class's current value is read from: the dict the plan
 * recorded, unless the class's metatype is not `type` and the dict is no
 * longer the class's own (PySide6 gives a class a new dict, or rotates its
 * dicts, once a module imports a feature): then the namespace the class shows
 * now (its __dict__, as for the registry's Python frame, feature set 0). New
 * reference; NULL with an exception set on error. */
static PyObject *str___dict__;

static PyObject *
live_namespace(PyObject *namespace, PyObject *owner)
{
    if (PyType_Check(owner) && Py_TYPE(owner) != &PyType_Type && PyDict_Check(namespace) &&
        ((PyTypeObject *)owner)->tp_dict != namespace) {
        return PyObject_GetAttr(owner, str___dict__);
    }
    return Py_NewRef(namespace);
}

/* current_value() of `name` in the owner's live namespace. */
static PyObject *
live_value(PyObject *namespace, PyObject *owner, PyObject *name, PyObject *missing)
{
    PyObject *live = live_namespace(namespace, owner);
    if (live == NULL) {
        return NULL;
    }
    PyObject *value = current_value(live, name, missing);
    Py_DECREF(live);
    return value;
}

/* PyType_Modified for every type in `stale`. (Popped just before: no bytecode
 * runs between the pop and PyType_Modified, so none can see it skipped.) */
static int
flush_stale(PyObject *stale)
{
    while (PySet_GET_SIZE(stale) > 0) {
        PyObject *owner = PySet_Pop(stale);
        if (owner == NULL) {
            return -1;
        }
        if (PyType_Check(owner)) {
            PyType_Modified((PyTypeObject *)owner);
        }
        Py_DECREF(owner);
    }
    return 0;
}

static int
check_step(PyObject *step)
{
    if (!PyTuple_CheckExact(step) || PyTuple_GET_SIZE(step) != 6) {
        PyErr_SetString(PyExc_TypeError, "a patch step is a 6-tuple");
        return -1;
    }
    return 0;
}

/* `last_stale`: the class this loop last added to `stale` (a borrowed
 * pointer, NULL at the start of each loop): most steps write the class the
 * step before wrote, and skip the set then, unless the set was emptied since
 * (a flush from Python code a class's own __setattr__ ran). */
static int
write_value(PyObject *step, PyObject *value, PyObject *stale, PyObject *missing,
            PyObject **last_stale)
{
    PyObject *owner = PyTuple_GET_ITEM(step, 1);
    PyObject *name = PyTuple_GET_ITEM(step, 2);
    PyObject *real = PyTuple_GET_ITEM(step, 5);
    if (PyTuple_CheckExact(real)) {
        /* (dict,): the namespace of a module, a class of metaclass type or a
         * Shiboken class (registry._direct_step), written directly only while
         * it is the owner's own dict (PySide6 replaces a class's dict, or
         * rotates it for another feature set, once a module imports a
         * feature); else setattr. A class joins `stale` as a built-in type. */
        PyObject *own = NULL;
        if (PyTuple_GET_SIZE(real) == 1) {
            if (PyType_Check(owner)) {
                own = ((PyTypeObject *)owner)->tp_dict;
            } else if (PyModule_CheckExact(owner)) {
                own = PyModule_GetDict(owner); /* borrowed; never fails for a module */
            }
        }
        if (own == NULL) {
            PyErr_SetString(PyExc_TypeError, "a direct step names (dict,) of a class or module");
            return -1;
        }
        real = PyTuple_GET_ITEM(real, 0);
        if (!PyDict_CheckExact(real) && !PyDict_Check(real)) {
            PyErr_SetString(PyExc_TypeError, "a direct step names (dict,)");
            return -1;
        }
        if (own != real) {
            real = Py_None; /* setattr, below */
        } else if (!PyType_Check(owner)) {
            if (value != missing) {
                return PyDict_SetItem(real, name, value);
            }
            if (PyDict_DelItem(real, name) < 0) {
                if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
                    return -1;
                }
                PyErr_Clear();
            }
            return 0;
        }
    }
    if (real != Py_None) {
        if (!PyDict_Check(real)) {
            PyErr_SetString(PyExc_TypeError, "a built-in type's namespace is a dict");
            return -1;
        }
        if ((owner != *last_stale || PySet_GET_SIZE(stale) == 0) && PySet_Add(stale, owner) < 0) {
            return -1;
        }
        *last_stale = owner;
        if (value != missing) {
            return PyDict_SetItem(real, name, value);
        }
        if (PyDict_DelItem(real, name) < 0) {
            if (!PyErr_ExceptionMatches(PyExc_KeyError)) {
                return -1;
            }
            PyErr_Clear();
        }
        return 0;
    }
    if (value == missing) {
        return PyObject_DelAttr(owner, name);
    }
    return PyObject_SetAttr(owner, name, value);
}

PyDoc_STRVAR(write_patches_doc,
             "write_patches(steps, patches, journal, stale, missing)\n\n"
             "Append each patch to journal, then write its replacement.");

static PyObject *
speedups_write_patches(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 5 || !PyTuple_Check(args[0]) || !PyTuple_Check(args[1]) ||
        !PyList_Check(args[2]) || !PySet_Check(args[3])) {
        PyErr_SetString(PyExc_TypeError,
                        "write_patches(steps: tuple, patches: tuple, journal: list, stale: set, "
                        "missing)");
        return NULL;
    }
    PyObject *steps = args[0], *patches = args[1], *journal = args[2], *stale = args[3];
    PyObject *missing = args[4];
    Py_ssize_t n = PyTuple_GET_SIZE(steps);
    if (PyTuple_GET_SIZE(patches) != n) {
        PyErr_SetString(PyExc_ValueError, "as many patches as steps");
        return NULL;
    }
    PyObject *last_stale = NULL;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *step = PyTuple_GET_ITEM(steps, i);
        if (check_step(step) < 0 || PyList_Append(journal, PyTuple_GET_ITEM(patches, i)) < 0 ||
            write_value(step, PyTuple_GET_ITEM(step, 4), stale, missing, &last_stale) < 0) {
            return NULL;
        }
    }
    if (flush_stale(stale) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(unwrite_patches_doc,
             "unwrite_patches(steps, journal, stale, missing)\n\n"
             "Take the journal's patches off, last first: each attribute that still holds\n"
             "its replacement gets its original back, then the patch is popped.");

static PyObject *
speedups_unwrite_patches(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 4 || !PyTuple_Check(args[0]) || !PyList_Check(args[1]) ||
        !PySet_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError,
                        "unwrite_patches(steps: tuple, journal: list, stale: set, missing)");
        return NULL;
    }
    PyObject *steps = args[0], *journal = args[1], *stale = args[2], *missing = args[3];
    PyObject *last_stale = NULL;
    Py_ssize_t n;
    while ((n = PyList_GET_SIZE(journal)) > 0) {
        if (n > PyTuple_GET_SIZE(steps)) {
            PyErr_SetString(PyExc_ValueError, "more patches than steps");
            return NULL;
        }
        PyObject *step = PyTuple_GET_ITEM(steps, n - 1);
        if (check_step(step) < 0) {
            return NULL;
        }
        PyObject *current = live_value(PyTuple_GET_ITEM(step, 0), PyTuple_GET_ITEM(step, 1),
                                       PyTuple_GET_ITEM(step, 2), missing);
        if (current == NULL) {
            return NULL;
        }
        /* Someone else's value on top of ours is kept (patching.revert_patch). */
        int ours = current == PyTuple_GET_ITEM(step, 4);
        Py_DECREF(current);
        if (ours && write_value(step, PyTuple_GET_ITEM(step, 3), stale, missing, &last_stale) < 0) {
            return NULL;
        }
        /* The last entry, as `patches.pop()` does: the size is read again, since a
         * class's own __setattr__ just ran and could have changed the list. */
        n = PyList_GET_SIZE(journal);
        if (n > 0 && PyList_SetSlice(journal, n - 1, n, NULL) < 0) {
            return NULL;
        }
    }
    if (flush_stale(stale) < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

PyDoc_STRVAR(all_hold_doc,
             "all_hold(checks, missing) -> bool\n\n"
             "Whether each (namespace, name, value, owner) of checks still holds: the owner's\n"
             "live namespace's value for name is value (missing: no value).");

static PyObject *
speedups_all_hold(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[0])) {
        PyErr_SetString(PyExc_TypeError, "all_hold(checks: tuple, missing)");
        return NULL;
    }
    PyObject *checks = args[0], *missing = args[1];
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(checks); i++) {
        PyObject *check = PyTuple_GET_ITEM(checks, i);
        if (!PyTuple_CheckExact(check) || PyTuple_GET_SIZE(check) != 4) {
            PyErr_SetString(PyExc_TypeError, "a check is a 4-tuple");
            return NULL;
        }
        PyObject *current = live_value(PyTuple_GET_ITEM(check, 0), PyTuple_GET_ITEM(check, 3),
                                       PyTuple_GET_ITEM(check, 1), missing);
        if (current == NULL) {
            return NULL;
        }
        int same = current == PyTuple_GET_ITEM(check, 2);
        Py_DECREF(current);
        if (!same) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

PyDoc_STRVAR(same_items_doc,
             "same_items(a, b) -> bool\n\nWhether tuple a and list or tuple b hold the very same "
             "objects, in order.");

static PyObject *
speedups_same_items(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "same_items(a, b)");
        return NULL;
    }
    PyObject *a = PySequence_Fast(args[0], "same_items: a sequence");
    if (a == NULL) {
        return NULL;
    }
    PyObject *b = PySequence_Fast(args[1], "same_items: a sequence");
    if (b == NULL) {
        Py_DECREF(a);
        return NULL;
    }
    Py_ssize_t n = PySequence_Fast_GET_SIZE(a);
    int same = n == PySequence_Fast_GET_SIZE(b);
    PyObject **ia = PySequence_Fast_ITEMS(a), **ib = PySequence_Fast_ITEMS(b);
    for (Py_ssize_t i = 0; same && i < n; i++) {
        same = ia[i] == ib[i];
    }
    Py_DECREF(a);
    Py_DECREF(b);
    return PyBool_FromLong(same);
}

PyDoc_STRVAR(lookups_hold_doc,
             "lookups_hold(lookups, modules) -> bool\n\n"
             "Whether each (parent, name, value) of lookups still finds value:\n"
             "modules.get(name) for a parent of None, else getattr(parent, name, None).");

static PyObject *
speedups_lookups_hold(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2 || !PyTuple_Check(args[0]) || !PyDict_Check(args[1])) {
        PyErr_SetString(PyExc_TypeError, "lookups_hold(lookups: tuple, modules: dict)");
        return NULL;
    }
    PyObject *lookups = args[0], *modules = args[1];
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(lookups); i++) {
        PyObject *lookup = PyTuple_GET_ITEM(lookups, i);
        if (!PyTuple_CheckExact(lookup) || PyTuple_GET_SIZE(lookup) != 3) {
            PyErr_SetString(PyExc_TypeError, "a lookup is a 3-tuple");
            return NULL;
        }
        PyObject *parent = PyTuple_GET_ITEM(lookup, 0), *name = PyTuple_GET_ITEM(lookup, 1);
        PyObject *found;
        if (parent == Py_None) {
            found = PyDict_GetItemWithError(modules, name);
            if (found == NULL && PyErr_Occurred()) {
                return NULL;
            }
            Py_XINCREF(found);
        }
        else {
            found = PyObject_GetAttr(parent, name);
            if (found == NULL) {
                if (!PyErr_ExceptionMatches(PyExc_AttributeError)) {
                    return NULL;
                }
                PyErr_Clear(); /* getattr(parent, name, None) */
            }
        }
        PyObject *value = PyTuple_GET_ITEM(lookup, 2);
        int same = found == NULL ? value == Py_None : found == value;
        Py_XDECREF(found);
        if (!same) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

static PyMethodDef speedups_methods[] = {
    {"write_patches", (PyCFunction)(void (*)(void))speedups_write_patches, METH_FASTCALL,
     write_patches_doc},
    {"unwrite_patches", (PyCFunction)(void (*)(void))speedups_unwrite_patches, METH_FASTCALL,
     unwrite_patches_doc},
    {"all_hold", (PyCFunction)(void (*)(void))speedups_all_hold, METH_FASTCALL, all_hold_doc},
    {"same_items", (PyCFunction)(void (*)(void))speedups_same_items, METH_FASTCALL,
     same_items_doc},
    {"lookups_hold", (PyCFunction)(void (*)(void))speedups_lookups_hold, METH_FASTCALL,
     lookups_hold_doc},
#ifdef LOOPWARDEN_RUNNING_LOOP
    {"running_loop", (PyCFunction)speedups_running_loop, METH_NOARGS, running_loop_doc},
#endif
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "loopwarden._speedups",
    .m_doc = "C versions of loopwarden's hottest wrapper paths (optional).",
    .m_size = -1,
    .m_methods = speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    str_loop = PyUnicode_InternFromString("loop");
    str_runs_here = PyUnicode_InternFromString("runs_here");
    str_stdout = PyUnicode_InternFromString("stdout");
    str_stderr = PyUnicode_InternFromString("stderr");
    str_stdin = PyUnicode_InternFromString("stdin");
    str_gettimeout = PyUnicode_InternFromString("gettimeout");
    str_stream = PyUnicode_InternFromString("stream");
    str_gui_thread = PyUnicode_InternFromString("gui_thread");
    str__loop = PyUnicode_InternFromString("_loop");
    str_category = PyUnicode_InternFromString("category");
    str__selector = PyUnicode_InternFromString("_selector");
    str___dict__ = PyUnicode_InternFromString("__dict__");
    if (str_loop == NULL || str_runs_here == NULL || str_stdout == NULL || str_stderr == NULL ||
        str_stdin == NULL || str_gettimeout == NULL || str_stream == NULL || str_gui_thread == NULL ||
        str__loop == NULL || str_category == NULL || str__selector == NULL || str___dict__ == NULL) {
        return NULL;
    }
    if (PyType_Ready(&LockMethod_Type) < 0 || PyType_Ready(&StreamMethod_Type) < 0 ||
        PyType_Ready(&MarkMethod_Type) < 0 || PyType_Ready(&LoopMethod_Type) < 0 ||
        PyType_Ready(&OwnerMethod_Type) < 0 || PyType_Ready(&ScheduleMethod_Type) < 0 ||
        PyType_Ready(&InstanceHook_Type) < 0) {
        return NULL;
    }
    PyObject *module = PyModule_Create(&speedups_module);
    if (module == NULL) {
        return NULL;
    }
    /* The signatures and behaviour of everything here, checked at import by
     * loopwarden.native: a library left behind by an older install is not
     * used (pure Python instead) rather than called wrongly. */
    if (PyModule_AddIntConstant(module, "ABI", LOOPWARDEN_SPEEDUPS_ABI) < 0 ||
        PyModule_AddObjectRef(module, "LockMethod", (PyObject *)&LockMethod_Type) < 0 ||
        PyModule_AddObjectRef(module, "StreamMethod", (PyObject *)&StreamMethod_Type) < 0 ||
        PyModule_AddObjectRef(module, "MarkMethod", (PyObject *)&MarkMethod_Type) < 0 ||
        PyModule_AddObjectRef(module, "LoopMethod", (PyObject *)&LoopMethod_Type) < 0 ||
        PyModule_AddObjectRef(module, "OwnerMethod", (PyObject *)&OwnerMethod_Type) < 0 ||
        PyModule_AddObjectRef(module, "ScheduleMethod", (PyObject *)&ScheduleMethod_Type) < 0 ||
        PyModule_AddObjectRef(module, "InstanceHook", (PyObject *)&InstanceHook_Type) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#ifdef LOOPWARDEN_LOCK_LAYOUT
    check_raw_lock_layout();
#endif
    if (PyModule_AddObjectRef(module, "FAST_LOCK_TAKE",
#ifdef LOOPWARDEN_LOCK_LAYOUT
                              raw_lock_type != NULL ? Py_True : Py_False
#else
                              Py_False
#endif
                              ) < 0) {
        Py_DECREF(module);
        return NULL;
    }
#ifdef LOOPWARDEN_RUNNING_LOOP
    /* Only where the C _asyncio is there to fall back on (and to be read). */
    PyObject *asyncio_c = PyImport_ImportModule("_asyncio");
    if (asyncio_c == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_ImportError)) {
            Py_DECREF(module);
            return NULL; /* a Ctrl-C during the import: not "no _asyncio" */
        }
        PyErr_Clear();
        if (PyObject_DelAttrString(module, "running_loop") < 0) {
            Py_DECREF(module);
            return NULL;
        }
        return module;
    }
    original_running_loop = PyObject_GetAttrString(asyncio_c, "_get_running_loop");
    Py_DECREF(asyncio_c);
    str_running_key = PyUnicode_InternFromString("__asyncio_running_event_loop__");
    running_loop_function = PyObject_GetAttrString(module, "running_loop");
    if (original_running_loop == NULL || str_running_key == NULL ||
        running_loop_function == NULL) {
        Py_DECREF(module);
        return NULL;
    }
    process_id = getpid();
    if (pthread_atfork(NULL, NULL, running_loop_after_fork) != 0) {
        /* No fork hook: a forked child would take its parent's loop for its own. */
        Py_CLEAR(running_loop_function);
        if (PyObject_DelAttrString(module, "running_loop") < 0) {
            Py_DECREF(module);
            return NULL;
        }
    }
#endif
    return module;
}
