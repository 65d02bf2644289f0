/*
 * logbroker.records._speedups: the per-record loops of batch.py in C.
 *
 * Why this exists
 * ---------------
 * Encoding and decoding a RecordBatch v2 records section (FORMAT.md section 2) is one Python-level loop
 * iteration per record, and that loop is what bounds the embedded Producer and Consumer.  Like
 * aiokafka's Cython codec, this module does the same work in C; batch.py imports it when it was
 * built and falls back to its own pure-Python code when it was not (it is an *optional* extension:
 * a machine without a compiler installs and runs without it).
 *
 * Contract with batch.py
 * ----------------------
 * The Python functions ``_decode_records_py``, ``_encode_values_only_py`` and ``_encode_records_py``
 * are the reference.  The C functions give the same results for every input they accept, and for
 * every input outside their fast path they return ``NotImplemented`` instead of guessing, so that
 * batch.py runs the Python version, which then returns or raises exactly what it always did.  The
 * fast path is: exact bytes / bytearray / None / str / int / list / tuple / dict objects, integers
 * within int64, and (decode) a ``bytes`` buffer with 0 <= pos <= end <= len(data).  Anything else
 * (an int subclass, a generator, a memoryview, a timestamp beyond int64 ...) goes to Python.
 *
 * Malformed *data* is the one thing decode does not hand back: it raises CorruptRecordError itself,
 * and it does so exactly when the Python version raises (CorruptRecordError or IndexError, which
 * the public ``decode_records`` turns into CorruptRecordError).  The Python loop reads from the
 * whole buffer and notices overruns late (a position that ends up past the record end); here every
 * read is checked against the end of the record (or of the section) before it happens, which raises
 * earlier but in exactly the same cases, because every byte the Python version reads is also a byte
 * it consumes, and its position never moves backwards.
 *
 * Encoding measures before it writes: each function walks its input once to check it and add up
 * the exact output size, allocates the bytes object once, and walks again to write, with the same
 * code (``out == NULL`` means "measure only") and a capacity check before every record.  No Python
 * code can run between the two walks (nothing here calls back into Python or allocates GC-tracked
 * objects), so the inputs cannot change under us.
 */

#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdint.h>
#include <string.h>

#define VARINT_MAX_BYTES 5   /* a varint (int32 field) takes at most 5 bytes ... */
#define VARLONG_MAX_BYTES 10 /* ... a varlong (int64 field) at most 10 */
/* attributes, timestampDelta, offsetDelta, keyLength, valueLength, headerCount: 1 byte each at least */
#define MIN_RECORD_BODY 6
/* ... plus at least one byte of length varint in front */
#define MIN_RECORD_SIZE (1 + MIN_RECORD_BODY)
/* the Python encoder indexes a table with offset deltas >= -SMALL (varint.SMALL); below that its
 * output is not a varint of the delta at all, so those inputs go to Python */
#define SMALL (1 << 14)
#define FALLBACK (-2) /* "input outside the fast path": return NotImplemented */

static PyObject *CorruptRecordError; /* logbroker.errors.CorruptRecordError, imported at init */
static PyObject *empty_tuple;        /* (), shared by every record without headers */

/* ---- integers -------------------------------------------------------------------------------- */

/* 1 and the value when obj is an exact int within int64; 0 (no exception set) otherwise. */
static int
exact_int64(PyObject *obj, int64_t *value)
{
    int overflow;
    long long v;

    if (!PyLong_CheckExact(obj))
        return 0;
    v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow)
        return 0;
    *value = (int64_t)v;
    return 1;
}

/* 1 and the value when obj is an exact int within Py_ssize_t; 0 (no exception set) otherwise. */
static int
exact_ssize(PyObject *obj, Py_ssize_t *value)
{
    int64_t v;

    if (!exact_int64(obj, &v) || v < PY_SSIZE_T_MIN || v > PY_SSIZE_T_MAX)
        return 0;
    *value = (Py_ssize_t)v;
    return 1;
}

/* a + b, or 0 when it does not fit in int64 */
static inline int
add_int64(int64_t a, int64_t b, int64_t *sum)
{
    if ((b > 0 && a > INT64_MAX - b) || (b < 0 && a < INT64_MIN - b))
        return 0;
    *sum = a + b;
    return 1;
}

/* a - b, or 0 when it does not fit in int64 */
static inline int
sub_int64(int64_t a, int64_t b, int64_t *diff)
{
    if ((b < 0 && a > INT64_MAX + b) || (b > 0 && a < INT64_MIN + b))
        return 0;
    *diff = a - b;
    return 1;
}

/* ---- zigzag varints (FORMAT.md section 2.1) ------------------------------------------------- */

static inline uint64_t
zigzag(int64_t v)
{
    return ((uint64_t)v << 1) ^ (0 - ((uint64_t)v >> 63));
}

static inline int64_t
unzigzag(uint64_t raw)
{
    return (int64_t)(raw >> 1) ^ -(int64_t)(raw & 1);
}

static inline Py_ssize_t
varint_size(uint64_t raw)
{
    Py_ssize_t n = 1;
    while (raw >= 0x80) {
        raw >>= 7;
        n++;
    }
    return n;
}

static inline uint8_t *
write_varint(uint8_t *p, uint64_t raw)
{
    while (raw >= 0x80) {
        *p++ = (uint8_t)(raw | 0x80);
        raw >>= 7;
    }
    *p++ = (uint8_t)raw;
    return p;
}

/* ---- decoding ------------------------------------------------------------------------------- */

/*
 * A read position in the records section.  Inside a record, `limit` is the record's end (the Python
 * loop would notice any byte read beyond it as a length mismatch); between records it is the end of
 * the section.  record_start / record_length describe the current record for error messages
 * (record_length -1: between records).
 */
typedef struct {
    const uint8_t *buf;
    Py_ssize_t pos;
    Py_ssize_t limit;
    Py_ssize_t record_start;
    int64_t record_length;
} Reader;

/* CorruptRecordError for a field that would run past `limit`; returns -1. */
static int
overrun(const Reader *r)
{
    if (r->record_length < 0)
        PyErr_Format(CorruptRecordError, "records run past the end of the batch at byte %zd", r->pos);
    else
        PyErr_Format(CorruptRecordError,
                     "record at byte %zd declares length %lld, but its fields run past its end at byte %zd",
                     r->record_start, (long long)r->record_length, r->pos);
    return -1;
}

/*
 * Read the raw (not yet unzigzagged) varint at r->pos, reading nothing at or past r->limit and at
 * most `max_bytes` bytes.  Zero-padded encodings (0x81 0x00 for -1) are accepted, as in
 * varint.decode_uvarint.  The 10th byte of a varlong may carry bits above bit 63, which Python keeps
 * (its integers have no width): they go to *high (bits 64-69), when `high` is given; a 5-byte varint
 * has at most 35 bits and never needs it.  Returns 0, or -1 with CorruptRecordError set.
 */
static inline int
read_varint(Reader *r, int max_bytes, uint64_t *raw, unsigned *high)
{
    Py_ssize_t p = r->pos;
    uint64_t result = 0;
    int i;

    for (i = 0; i < max_bytes; i++) {
        uint8_t b;
        if (p >= r->limit)
            return overrun(r);
        b = r->buf[p++];
        result |= (uint64_t)(b & 0x7F) << (7 * i); /* i <= 9: the shift stays below 64 */
        if (b < 0x80) {
            if (high != NULL)
                *high = i == 9 ? (unsigned)(b & 0x7F) >> 1 : 0;
            *raw = result;
            r->pos = p;
            return 0;
        }
    }
    PyErr_Format(CorruptRecordError, "varint longer than %d bytes ending at byte %zd", max_bytes, p);
    return -1;
}

/* A 5-byte zigzag varint at r->pos; one- and two-byte encodings (most fields) take a short cut. */
static inline int
read_int(Reader *r, int64_t *value)
{
    uint64_t raw;
    Py_ssize_t p = r->pos;

    if (p < r->limit && r->buf[p] < 0x80) {
        *value = unzigzag(r->buf[p]);
        r->pos = p + 1;
        return 0;
    }
    if (p + 1 < r->limit && r->buf[p + 1] < 0x80) {
        *value = unzigzag((uint64_t)(r->buf[p] & 0x7F) | ((uint64_t)r->buf[p + 1] << 7));
        r->pos = p + 2;
        return 0;
    }
    if (read_varint(r, VARINT_MAX_BYTES, &raw, NULL) < 0)
        return -1;
    *value = unzigzag(raw);
    return 0;
}

/*
 * Python's value of a zigzag varlong of more than 64 bits: raw = high * 2**64 + low, and
 * (raw >> 1) ^ -(raw & 1).  Only a malformed (or hostile) 10-byte varlong gets here.
 */
static PyObject *
wide_unzigzag(uint64_t low, unsigned high)
{
    PyObject *top, *shift, *shifted, *q, *result;

    top = PyLong_FromUnsignedLong(high);
    shift = PyLong_FromLong(63);
    if (top == NULL || shift == NULL) {
        Py_XDECREF(top);
        Py_XDECREF(shift);
        return NULL;
    }
    shifted = PyNumber_Lshift(top, shift); /* high * 2**63 */
    Py_DECREF(top);
    Py_DECREF(shift);
    if (shifted == NULL)
        return NULL;
    top = PyLong_FromUnsignedLongLong(low >> 1);
    if (top == NULL) {
        Py_DECREF(shifted);
        return NULL;
    }
    q = PyNumber_Or(shifted, top); /* raw >> 1 */
    Py_DECREF(shifted);
    Py_DECREF(top);
    if (q == NULL || !(low & 1))
        return q;
    result = PyNumber_Invert(q); /* q ^ -1 */
    Py_DECREF(q);
    return result;
}

/*
 * Garbage-collector tracking.  Records are tuples, and the GC only needs to see containers that can
 * be part of a reference cycle.  CPython itself stops tracking an exact tuple whose items are all
 * atomic (or untracked tuples), but only lazily, during a collection, and never for tuple
 * *subclasses* such as Record: each decoded record would stay tracked and be walked by every
 * collection until it dies, which costs more than decoding it.  A record holds ints, bytes, None,
 * str and tuples of those, so it cannot be part of a cycle: it is created untracked, by the same
 * test CPython applies (_PyObject_GC_MAY_BE_TRACKED).  Anything else among its items (an unusual
 * topic object, say) keeps it tracked.
 */
static inline int
may_be_tracked(PyObject *obj)
{
    if (!PyObject_IS_GC(obj))
        return 0;
    /* a tuple cannot gain items later, so its current state is final; other containers can */
    return !PyTuple_CheckExact(obj) || PyObject_GC_IsTracked(obj);
}

/* What every record of one call shares (all references borrowed from the arguments). */
typedef struct {
    PyTypeObject *record_type;
    PyObject *topic;
    PyObject *partition;
    PyObject *timestamp_type;
    PyObject *fixed_timestamp;    /* NULL for CreateTime: then base + delta */
    PyObject *base_offset;        /* an exact int */
    PyObject *base_timestamp;     /* an exact int (unless fixed_timestamp is set) */
    int64_t base_offset_value;    /* valid when base_offset_fits */
    int64_t base_timestamp_value; /* valid when base_timestamp_fits */
    int base_offset_fits;
    int base_timestamp_fits;
    int track_records; /* may_be_tracked() of one of the shared items: track every record */
} DecodeContext;

/* base + delta as a Python int: in C when it fits in int64, else in Python integers. */
static PyObject *
add_to_base(PyObject *base, int64_t base_value, int base_fits, int64_t delta, PyObject *wide_delta)
{
    PyObject *delta_obj, *sum;
    int64_t value;

    if (wide_delta != NULL)
        return PyNumber_Add(base, wide_delta);
    if (base_fits && add_int64(base_value, delta, &value))
        return PyLong_FromLongLong(value);
    delta_obj = PyLong_FromLongLong(delta);
    if (delta_obj == NULL)
        return NULL;
    sum = PyNumber_Add(base, delta_obj);
    Py_DECREF(delta_obj);
    return sum;
}

/*
 * A nullable byte string at r->pos: varint length (-1 = null, in any zero-padded form too) and
 * the bytes.  `what` names the field in errors.  New reference or NULL.
 */
static PyObject *
read_nullable_bytes(Reader *r, const char *what)
{
    int64_t n;
    PyObject *obj;

    if (read_int(r, &n) < 0)
        return NULL;
    if (n == -1)
        Py_RETURN_NONE;
    if (n < 0) {
        PyErr_Format(CorruptRecordError, "%s length %lld at byte %zd", what, (long long)n, r->pos);
        return NULL;
    }
    if (n > r->limit - r->pos) {
        overrun(r);
        return NULL;
    }
    obj = PyBytes_FromStringAndSize((const char *)r->buf + r->pos, (Py_ssize_t)n);
    r->pos += (Py_ssize_t)n;
    return obj;
}

/* One header: (str key, bytes-or-None value).  New reference or NULL. */
static PyObject *
read_header(Reader *r)
{
    int64_t n;
    PyObject *key, *value, *pair;

    if (read_int(r, &n) < 0)
        return NULL;
    if (n < 0) {
        PyErr_Format(CorruptRecordError, "header key length %lld at byte %zd", (long long)n, r->pos);
        return NULL;
    }
    if (n > r->limit - r->pos) {
        overrun(r);
        return NULL;
    }
    key = PyUnicode_DecodeUTF8((const char *)r->buf + r->pos, (Py_ssize_t)n, NULL); /* strict */
    if (key == NULL) {
        if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
            PyErr_Clear();
            PyErr_Format(CorruptRecordError, "header key at byte %zd is not UTF-8", r->pos);
        }
        return NULL;
    }
    r->pos += (Py_ssize_t)n;
    value = read_nullable_bytes(r, "header value");
    if (value == NULL) {
        Py_DECREF(key);
        return NULL;
    }
    pair = PyTuple_New(2);
    if (pair == NULL) {
        Py_DECREF(key);
        Py_DECREF(value);
        return NULL;
    }
    PyTuple_SET_ITEM(pair, 0, key);
    PyTuple_SET_ITEM(pair, 1, value);
    PyObject_GC_UnTrack(pair); /* a str and bytes or None: no cycle through it */
    return pair;
}

/* The headers of one record: a tuple of pairs, the shared () when there are none. */
static PyObject *
read_headers(Reader *r)
{
    int64_t count;
    Py_ssize_t i;
    PyObject *headers;

    if (read_int(r, &count) < 0)
        return NULL;
    if (count == 0) {
        Py_INCREF(empty_tuple);
        return empty_tuple;
    }
    if (count < 0) {
        PyErr_Format(CorruptRecordError, "negative header count %lld at byte %zd", (long long)count, r->pos);
        return NULL;
    }
    /* each header takes two bytes at least (two length varints): this also bounds the tuple */
    if (count > (r->limit - r->pos) / 2) {
        overrun(r);
        return NULL;
    }
    headers = PyTuple_New((Py_ssize_t)count);
    if (headers == NULL)
        return NULL;
    PyObject_GC_UnTrack(headers); /* see may_be_tracked(); also hides the NULL slots */
    for (i = 0; i < (Py_ssize_t)count; i++) {
        PyObject *pair = read_header(r);
        if (pair == NULL) {
            Py_DECREF(headers); /* unfilled slots are NULL, which tuple dealloc skips */
            return NULL;
        }
        PyTuple_SET_ITEM(headers, i, pair);
    }
    return headers;
}

/*
 * An instance of record_type (a tuple subclass) from 8 new references, which it steals, built as
 * tuple.__new__(record_type, items) builds one: the type's tp_alloc (which starts GC tracking;
 * nothing allocates between it and the filling of the slots), then the slots; then untracked
 * unless `track` (see may_be_tracked).
 */
static PyObject *
new_record(PyTypeObject *type, PyObject *items[8], int track)
{
    PyObject *record;
    int i;

    record = type == &PyTuple_Type ? PyTuple_New(8) : type->tp_alloc(type, 8);
    if (record == NULL) {
        for (i = 0; i < 8; i++)
            Py_DECREF(items[i]);
        return NULL;
    }
    for (i = 0; i < 8; i++)
        PyTuple_SET_ITEM(record, i, items[i]);
    if (!track)
        PyObject_GC_UnTrack(record);
    return record;
}

/* Decode the record at r->pos (r->limit: the end of the section); new reference or NULL. */
static PyObject *
decode_one(const DecodeContext *ctx, Reader *r)
{
    Py_ssize_t section_end = r->limit;
    int64_t length, offset_delta, ts_delta = 0;
    uint64_t raw;
    unsigned high;
    PyObject *wide_ts_delta = NULL, *key = NULL, *value = NULL, *headers = NULL;
    PyObject *offset = NULL, *timestamp = NULL;
    PyObject *items[8];

    r->record_length = -1;
    if (read_int(r, &length) < 0)
        return NULL;
    if (length < MIN_RECORD_BODY || length > section_end - r->pos) {
        PyErr_Format(CorruptRecordError, "record at byte %zd declares length %lld, which does not fit",
                     r->pos, (long long)length);
        return NULL;
    }
    r->record_start = r->pos;
    r->record_length = length;
    r->limit = r->pos + (Py_ssize_t)length;
    r->pos++; /* attributes: no bits are used in v2 */
    if (read_varint(r, VARLONG_MAX_BYTES, &raw, &high) < 0)
        goto error;
    if (high == 0)
        ts_delta = unzigzag(raw);
    else if (ctx->fixed_timestamp == NULL && (wide_ts_delta = wide_unzigzag(raw, high)) == NULL)
        goto error;
    if (read_int(r, &offset_delta) < 0)
        goto error;
    if ((key = read_nullable_bytes(r, "record key")) == NULL)
        goto error;
    if ((value = read_nullable_bytes(r, "record value")) == NULL)
        goto error;
    if ((headers = read_headers(r)) == NULL)
        goto error;
    if (r->pos != r->limit) {
        PyErr_Format(CorruptRecordError, "record at offset delta %lld declares %lld bytes but holds %lld",
                     (long long)offset_delta, (long long)length, (long long)(length - (r->limit - r->pos)));
        goto error;
    }
    offset = add_to_base(ctx->base_offset, ctx->base_offset_value, ctx->base_offset_fits, offset_delta, NULL);
    if (offset == NULL)
        goto error;
    if (ctx->fixed_timestamp != NULL) {
        timestamp = ctx->fixed_timestamp;
        Py_INCREF(timestamp);
    }
    else {
        timestamp = add_to_base(ctx->base_timestamp, ctx->base_timestamp_value, ctx->base_timestamp_fits,
                                ts_delta, wide_ts_delta);
        if (timestamp == NULL)
            goto error;
    }
    Py_CLEAR(wide_ts_delta);
    r->limit = section_end;
    items[0] = ctx->topic;
    items[1] = ctx->partition;
    items[2] = offset;
    items[3] = timestamp;
    items[4] = ctx->timestamp_type;
    items[5] = key;
    items[6] = value;
    items[7] = headers;
    Py_INCREF(items[0]);
    Py_INCREF(items[1]);
    Py_INCREF(items[4]);
    /* offset and timestamp are ints, key and value bytes or None: only headers and the shared items
     * (ctx->track_records) can hold a tracked object */
    return new_record(ctx->record_type, items, ctx->track_records || may_be_tracked(headers));

error:
    r->limit = section_end;
    Py_XDECREF(wide_ts_delta);
    Py_XDECREF(key);
    Py_XDECREF(value);
    Py_XDECREF(headers);
    Py_XDECREF(offset);
    return NULL;
}

PyDoc_STRVAR(decode_records_doc,
"decode_records(data, pos, end, count, base_offset, base_timestamp, timestamp_type,\n"
"               fixed_timestamp, topic, partition, record_type) -> list | NotImplemented\n"
"\n"
"batch._decode_records_py in C: decode `count` records from data[pos:end] into record_type\n"
"instances.  Raises CorruptRecordError on malformed data; returns NotImplemented for arguments\n"
"outside the fast path (data not bytes, positions out of range, non-int integers).");

static PyObject *
decode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    DecodeContext ctx;
    Reader r;
    PyObject *data, *out;
    Py_ssize_t pos, end, count, room, i;

    if (nargs != 11) {
        PyErr_Format(PyExc_TypeError, "decode_records() takes 11 arguments (%zd given)", nargs);
        return NULL;
    }
    data = args[0];
    ctx.base_offset = args[4];
    ctx.base_timestamp = args[5];
    ctx.timestamp_type = args[6];
    ctx.fixed_timestamp = args[7] == Py_None ? NULL : args[7];
    ctx.topic = args[8];
    ctx.partition = args[9];
    if (!PyBytes_CheckExact(data) || !exact_ssize(args[1], &pos) || !exact_ssize(args[2], &end)
        || !exact_ssize(args[3], &count) || pos < 0 || pos > end || end > PyBytes_GET_SIZE(data)
        || !PyLong_CheckExact(ctx.base_offset)
        || (ctx.fixed_timestamp == NULL && !PyLong_CheckExact(ctx.base_timestamp))
        || !PyType_Check(args[10]) || !PyType_IsSubtype((PyTypeObject *)args[10], &PyTuple_Type))
        Py_RETURN_NOTIMPLEMENTED;
    ctx.record_type = (PyTypeObject *)args[10];
    ctx.base_offset_value = ctx.base_timestamp_value = 0; /* read only when *_fits, below */
    ctx.base_offset_fits = exact_int64(ctx.base_offset, &ctx.base_offset_value);
    ctx.base_timestamp_fits = ctx.fixed_timestamp == NULL
                              && exact_int64(ctx.base_timestamp, &ctx.base_timestamp_value);
    ctx.track_records = may_be_tracked(ctx.topic) || may_be_tracked(ctx.partition)
                        || may_be_tracked(ctx.timestamp_type)
                        || (ctx.fixed_timestamp != NULL && may_be_tracked(ctx.fixed_timestamp));
    if (count < 0)
        count = 0; /* range(count) is empty */
    /* Every record takes MIN_RECORD_SIZE bytes at least: a count beyond that fails on the way (on
     * the first record that does not fit), so the list need not be larger. */
    room = (end - pos) / MIN_RECORD_SIZE;
    out = PyList_New(count < room ? count : room);
    if (out == NULL)
        return NULL;
    /* Decoding allocates, so the GC may run: keep the list, whose slots are NULL until filled,
     * out of its sight (and out of gc.get_objects()) until it is complete. */
    PyObject_GC_UnTrack(out);
    r.buf = (const uint8_t *)PyBytes_AS_STRING(data);
    r.pos = pos;
    r.limit = end;
    for (i = 0; i < count; i++) {
        PyObject *record = decode_one(&ctx, &r);
        if (record == NULL) {
            Py_DECREF(out); /* unfilled slots are NULL, which list dealloc skips */
            return NULL;
        }
        if (i < PyList_GET_SIZE(out)) {
            PyList_SET_ITEM(out, i, record);
        }
        else { /* cannot happen (see above), but never write past the list */
            int failed = PyList_Append(out, record);
            Py_DECREF(record);
            if (failed) {
                Py_DECREF(out);
                return NULL;
            }
        }
    }
    if (r.pos != end) {
        PyErr_Format(CorruptRecordError, "%zd bytes left over after %zd records", end - r.pos, count);
        Py_DECREF(out);
        return NULL;
    }
    PyObject_GC_Track(out);
    return out;
}

/* ---- encoding ------------------------------------------------------------------------------- */

/* A nullable byte string to write: len -1 = null (written as the varint -1, i.e. 0x01). */
typedef struct {
    const char *ptr;
    Py_ssize_t len;
} Field;

static inline Py_ssize_t
field_size(Field f)
{
    return varint_size(zigzag(f.len)) + (f.len > 0 ? f.len : 0);
}

static inline uint8_t *
write_field(uint8_t *p, Field f)
{
    p = write_varint(p, zigzag(f.len));
    if (f.len > 0) {
        memcpy(p, f.ptr, (size_t)f.len);
        p += f.len;
    }
    return p;
}

/* A key or value: None, bytes or bytearray (exact types); anything else is FALLBACK. */
static inline int
bytes_field(PyObject *obj, Field *f)
{
    if (obj == Py_None) {
        f->ptr = NULL;
        f->len = -1;
    }
    else if (PyBytes_CheckExact(obj)) {
        f->ptr = PyBytes_AS_STRING(obj);
        f->len = PyBytes_GET_SIZE(obj);
    }
    else if (PyByteArray_CheckExact(obj)) {
        f->ptr = PyByteArray_AS_STRING(obj);
        f->len = PyByteArray_GET_SIZE(obj);
    }
    else {
        return FALLBACK;
    }
    return 0;
}

/* An exact str as its UTF-8 bytes.  Lone surrogates (str.encode() raises) are FALLBACK. */
static int
str_field(PyObject *obj, Field *f)
{
    f->ptr = PyUnicode_AsUTF8AndSize(obj, &f->len);
    if (f->ptr != NULL)
        return 0;
    if (PyErr_ExceptionMatches(PyExc_UnicodeEncodeError)) {
        PyErr_Clear();
        return FALLBACK;
    }
    return -1;
}

/* The next (key, value) pair of headers (a list or tuple of 2-tuples / 2-lists, or a dict):
 * 1 with borrowed references, 0 at the end, FALLBACK for an item of another shape. */
static int
next_header(PyObject *headers, Py_ssize_t *iter, PyObject **key, PyObject **value)
{
    PyObject *item;

    if (PyDict_CheckExact(headers))
        return PyDict_Next(headers, iter, key, value);
    if (*iter >= PySequence_Fast_GET_SIZE(headers))
        return 0;
    item = PySequence_Fast_GET_ITEM(headers, *iter);
    (*iter)++;
    if (!(PyTuple_CheckExact(item) || PyList_CheckExact(item)) || PySequence_Fast_GET_SIZE(item) != 2)
        return FALLBACK;
    *key = PySequence_Fast_GET_ITEM(item, 0);
    *value = PySequence_Fast_GET_ITEM(item, 1);
    return 1;
}

/*
 * The headers part of a record (batch._encode_headers, or the single 0x00 of "no headers"): write
 * it to out (capacity cap) or, when out is NULL, only measure it.  headers is None, a list or tuple
 * of (str, bytes | bytearray | str | None) pairs, or a dict of them.  Returns the size, -1 with an
 * exception set, or FALLBACK (other types, e.g. a non-str key: Python raises InvalidRecordError).
 */
static Py_ssize_t
encode_headers(PyObject *headers, uint8_t *out, Py_ssize_t cap)
{
    Py_ssize_t count, size, iter = 0;
    PyObject *hkey, *hvalue;
    int more;

    if (headers == Py_None)
        count = 0;
    else if (PyDict_CheckExact(headers))
        count = PyDict_GET_SIZE(headers);
    else if (PyList_CheckExact(headers) || PyTuple_CheckExact(headers))
        count = PySequence_Fast_GET_SIZE(headers);
    else
        return FALLBACK;
    size = varint_size(zigzag(count));
    if (out != NULL) {
        if (size > cap)
            goto overrun;
        out = write_varint(out, zigzag(count));
    }
    while (count > 0 && (more = next_header(headers, &iter, &hkey, &hvalue)) != 0) {
        Field k, v;
        int status;

        if (more < 0)
            return more;
        if (!PyUnicode_CheckExact(hkey))
            return FALLBACK;
        if ((status = str_field(hkey, &k)) < 0)
            return status;
        if (PyUnicode_CheckExact(hvalue))
            status = str_field(hvalue, &v);
        else
            status = bytes_field(hvalue, &v);
        if (status < 0)
            return status;
        size += field_size(k) + field_size(v);
        if (out != NULL) {
            if (size > cap)
                goto overrun;
            out = write_field(out, k);
            out = write_field(out, v);
        }
    }
    return size;

overrun:
    PyErr_SetString(PyExc_SystemError, "_speedups: headers outgrew their measured size");
    return -1;
}

/*
 * One record, written to out (capacity cap) or, when out is NULL, only measured: varint body
 * length, then attributes 0, timestampDelta, offsetDelta, key, value, headers (headers NULL: none,
 * a single 0x00).  Returns the size, -1 with an exception set, or FALLBACK.
 */
static Py_ssize_t
encode_record(uint8_t *out, Py_ssize_t cap, int64_t ts_delta, int64_t offset_delta, Field key, Field value,
              PyObject *headers)
{
    uint64_t zts = zigzag(ts_delta), zoff = zigzag(offset_delta);
    Py_ssize_t headers_size = 1, body, total;
    uint8_t *p;

    if (headers != NULL && (headers_size = encode_headers(headers, NULL, 0)) < 0)
        return headers_size;
    body = 1 + varint_size(zts) + varint_size(zoff) + field_size(key) + field_size(value) + headers_size;
    total = varint_size(zigzag(body)) + body;
    if (out == NULL)
        return total;
    if (total > cap) {
        PyErr_SetString(PyExc_SystemError, "_speedups: a record outgrew its measured size");
        return -1;
    }
    p = write_varint(out, zigzag(body));
    *p++ = 0; /* attributes */
    p = write_varint(p, zts);
    p = write_varint(p, zoff);
    p = write_field(p, key);
    p = write_field(p, value);
    if (headers == NULL)
        *p = 0;
    else if (encode_headers(headers, p, headers_size) < 0)
        return -1;
    return total;
}

/* timestamp - base_timestamp for an exact int timestamp, when it fits in int64 (else 0). */
static inline int
timestamp_delta(PyObject *timestamp, int64_t base_timestamp, int64_t *delta)
{
    int64_t ts;
    return exact_int64(timestamp, &ts) && sub_int64(ts, base_timestamp, delta);
}

/* The sum of record sizes, refusing a total beyond Py_ssize_t. */
static inline int
add_size(Py_ssize_t *total, Py_ssize_t size)
{
    if (size > PY_SSIZE_T_MAX - *total) {
        PyErr_NoMemory();
        return -1;
    }
    *total += size;
    return 0;
}

/* Record i of encode_values_only's arguments (see encode_record for out / cap / return). */
static Py_ssize_t
encode_value_record(PyObject *values, PyObject *timestamps, int64_t base_timestamp, Py_ssize_t i,
                    uint8_t *out, Py_ssize_t cap)
{
    static const Field null_key = {NULL, -1};
    Field value;
    int64_t ts_delta;

    if (bytes_field(PySequence_Fast_GET_ITEM(values, i), &value) < 0
        || !timestamp_delta(PySequence_Fast_GET_ITEM(timestamps, i), base_timestamp, &ts_delta))
        return FALLBACK;
    return encode_record(out, cap, ts_delta, i, null_key, value, NULL);
}

/* Record i of encode_records' arguments: a (key, value, headers, timestamp) tuple or list. */
static Py_ssize_t
encode_full_record(PyObject *records, PyObject *deltas, int64_t base_timestamp, Py_ssize_t i,
                   uint8_t *out, Py_ssize_t cap)
{
    PyObject *record = PySequence_Fast_GET_ITEM(records, i);
    Field key, value;
    int64_t ts_delta, offset_delta = i;

    if (deltas != NULL && (!exact_int64(PySequence_Fast_GET_ITEM(deltas, i), &offset_delta)
                           || offset_delta < -SMALL))
        return FALLBACK;
    if (!(PyTuple_CheckExact(record) || PyList_CheckExact(record)) || PySequence_Fast_GET_SIZE(record) != 4
        || bytes_field(PySequence_Fast_GET_ITEM(record, 0), &key) < 0
        || bytes_field(PySequence_Fast_GET_ITEM(record, 1), &value) < 0
        || !timestamp_delta(PySequence_Fast_GET_ITEM(record, 3), base_timestamp, &ts_delta))
        return FALLBACK;
    return encode_record(out, cap, ts_delta, offset_delta, key, value, PySequence_Fast_GET_ITEM(record, 2));
}

typedef Py_ssize_t (*record_encoder)(PyObject *, PyObject *, int64_t, Py_ssize_t, uint8_t *, Py_ssize_t);

/*
 * Encode records 0..n-1 with `encode`: measure them all, allocate the bytes once, write them all.
 * Returns a new bytes object, NULL with an exception set, or NotImplemented.
 */
static PyObject *
encode_all(record_encoder encode, PyObject *a, PyObject *b, int64_t base_timestamp, Py_ssize_t n)
{
    Py_ssize_t i, size, total = 0, written = 0;
    PyObject *result;
    uint8_t *out;

    for (i = 0; i < n; i++) {
        size = encode(a, b, base_timestamp, i, NULL, 0);
        if (size == FALLBACK)
            Py_RETURN_NOTIMPLEMENTED;
        if (size < 0 || add_size(&total, size) < 0)
            return NULL;
    }
    result = PyBytes_FromStringAndSize(NULL, total);
    if (result == NULL)
        return NULL;
    out = (uint8_t *)PyBytes_AS_STRING(result);
    for (i = 0; i < n; i++) {
        size = encode(a, b, base_timestamp, i, out + written, total - written);
        if (size < 0) { /* cannot be FALLBACK: the same inputs passed the first walk */
            Py_DECREF(result);
            if (size == FALLBACK)
                PyErr_SetString(PyExc_SystemError, "_speedups: input changed while encoding");
            return NULL;
        }
        written += size;
    }
    if (written != total) {
        Py_DECREF(result);
        PyErr_SetString(PyExc_SystemError, "_speedups: records did not fill their measured size");
        return NULL;
    }
    return result;
}

static inline int
is_list_or_tuple(PyObject *obj)
{
    return PyList_CheckExact(obj) || PyTuple_CheckExact(obj);
}

PyDoc_STRVAR(encode_values_only_doc,
"encode_values_only(values, timestamps, base_timestamp) -> bytes | NotImplemented\n"
"\n"
"batch._encode_values_only_py in C: records with null keys and no headers.");

static PyObject *
encode_values_only(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *values, *timestamps;
    int64_t base_timestamp;
    Py_ssize_t n;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "encode_values_only() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    values = args[0];
    timestamps = args[1];
    if (!is_list_or_tuple(values) || !is_list_or_tuple(timestamps) || !exact_int64(args[2], &base_timestamp))
        Py_RETURN_NOTIMPLEMENTED;
    n = Py_MIN(PySequence_Fast_GET_SIZE(values), PySequence_Fast_GET_SIZE(timestamps)); /* zip() */
    return encode_all(encode_value_record, values, timestamps, base_timestamp, n);
}

PyDoc_STRVAR(encode_records_doc,
"encode_records(records, base_timestamp, offset_deltas) -> bytes | NotImplemented\n"
"\n"
"batch._encode_records_py in C: (key, value, headers, timestamp) records; offset_deltas None\n"
"means 0, 1, 2 ...");

static PyObject *
encode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *records, *deltas;
    int64_t base_timestamp;
    Py_ssize_t n;

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError, "encode_records() takes 3 arguments (%zd given)", nargs);
        return NULL;
    }
    records = args[0];
    deltas = args[2] == Py_None ? NULL : args[2];
    if (!is_list_or_tuple(records) || (deltas != NULL && !is_list_or_tuple(deltas))
        || !exact_int64(args[1], &base_timestamp))
        Py_RETURN_NOTIMPLEMENTED;
    n = PySequence_Fast_GET_SIZE(records);
    if (deltas != NULL)
        n = Py_MIN(n, PySequence_Fast_GET_SIZE(deltas)); /* zip() */
    return encode_all(encode_full_record, records, deltas, base_timestamp, n);
}

/* ---- checking a producer's records without building them ------------------------------------ */

/* Skip a length-prefixed field of r (key, value or header value): -1 is null, below that is damage. */
static inline int
skip_field(Reader *r, const char *what, int allow_null)
{
    int64_t n;

    if (read_int(r, &n) < 0)
        return -1;
    if (n < (allow_null ? -1 : 0)) {
        PyErr_Format(CorruptRecordError, "record %s length %lld at byte %zd", what, (long long)n, r->pos);
        return -1;
    }
    if (n > 0) {
        if (n > r->limit - r->pos)
            return overrun(r);
        r->pos += (Py_ssize_t)n;
    }
    return 0;
}

PyDoc_STRVAR(scan_records_doc,
"scan_records(data, pos, end, count, base_timestamp) -> int | None | NotImplemented\n"
"\n"
"batch._scan_records_py in C: check the structure of `count` records in data[pos:end] as a producer\n"
"sent them (every length fits, offset deltas are 0, 1, 2 ..., nothing is left over, header keys are\n"
"UTF-8) without creating them; return the largest record timestamp (None when count is 0).");

static PyObject *
scan_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t pos, end, count, i, h;
    int64_t base_timestamp, max_timestamp = INT64_MIN;
    Reader r;

    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError, "scan_records() takes 5 arguments (%zd given)", nargs);
        return NULL;
    }
    if (!PyBytes_CheckExact(args[0]) || !exact_ssize(args[1], &pos) || !exact_ssize(args[2], &end)
        || !exact_ssize(args[3], &count) || !exact_int64(args[4], &base_timestamp)
        || pos < 0 || end < pos || end > PyBytes_GET_SIZE(args[0]) || count < 0)
        Py_RETURN_NOTIMPLEMENTED;
    r.buf = (const uint8_t *)PyBytes_AS_STRING(args[0]);
    r.pos = pos;
    r.record_start = pos;
    for (i = 0; i < count; i++) {
        int64_t length, offset_delta, headers, timestamp;
        uint64_t raw;
        unsigned high;

        r.limit = end;
        r.record_length = -1;
        if (read_int(&r, &length) < 0)
            return NULL;
        if (length < 6 || length > end - r.pos) {
            PyErr_Format(CorruptRecordError, "record at byte %zd declares length %lld, which does not fit",
                         r.pos, (long long)length);
            return NULL;
        }
        r.record_start = r.pos;
        r.record_length = length;
        r.limit = r.pos + (Py_ssize_t)length;
        r.pos++; /* attributes: length >= 6 keeps this inside the record */
        if (read_varint(&r, VARLONG_MAX_BYTES, &raw, &high) < 0)
            return NULL;
        if (high != 0 || !add_int64(base_timestamp, unzigzag(raw), &timestamp)) {
            PyErr_Format(CorruptRecordError, "record at byte %zd has a timestamp delta out of range", r.record_start);
            return NULL;
        }
        if (timestamp > max_timestamp)
            max_timestamp = timestamp;
        if (read_int(&r, &offset_delta) < 0)
            return NULL;
        if (offset_delta != i) {
            PyErr_Format(CorruptRecordError, "record %zd of the batch has offset delta %lld", i,
                         (long long)offset_delta);
            return NULL;
        }
        if (skip_field(&r, "key", 1) < 0 || skip_field(&r, "value", 1) < 0)
            return NULL;
        if (read_int(&r, &headers) < 0)
            return NULL;
        if (headers < 0) {
            PyErr_Format(CorruptRecordError, "negative header count %lld at byte %zd", (long long)headers, r.pos);
            return NULL;
        }
        for (h = 0; h < headers; h++) {
            int64_t n;
            PyObject *key;

            if (read_int(&r, &n) < 0)
                return NULL;
            if (n < 0) {
                PyErr_Format(CorruptRecordError, "header key length %lld at byte %zd", (long long)n, r.pos);
                return NULL;
            }
            if (n > r.limit - r.pos) {
                overrun(&r);
                return NULL;
            }
            key = PyUnicode_DecodeUTF8((const char *)r.buf + r.pos, (Py_ssize_t)n, "strict");
            if (key == NULL) {
                PyErr_Clear();
                PyErr_Format(CorruptRecordError, "header key at byte %zd is not UTF-8", r.pos);
                return NULL;
            }
            Py_DECREF(key);
            r.pos += (Py_ssize_t)n;
            if (skip_field(&r, "header value", 1) < 0)
                return NULL;
        }
        if (r.pos != r.limit) {
            PyErr_Format(CorruptRecordError, "record at byte %zd declares %lld bytes but holds %zd",
                         r.record_start, (long long)length, r.pos - r.record_start);
            return NULL;
        }
    }
    if (r.pos != end) {
        PyErr_Format(CorruptRecordError, "%zd bytes left over after %zd records", end - r.pos, count);
        return NULL;
    }
    if (count == 0)
        Py_RETURN_NONE;
    return PyLong_FromLongLong(max_timestamp);
}

/* ---- module --------------------------------------------------------------------------------- */

static PyMethodDef speedups_methods[] = {
    {"decode_records", (PyCFunction)(void (*)(void))decode_records, METH_FASTCALL, decode_records_doc},
    {"encode_values_only", (PyCFunction)(void (*)(void))encode_values_only, METH_FASTCALL,
     encode_values_only_doc},
    {"encode_records", (PyCFunction)(void (*)(void))encode_records, METH_FASTCALL, encode_records_doc},
    {"scan_records", (PyCFunction)(void (*)(void))scan_records, METH_FASTCALL, scan_records_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "logbroker.records._speedups",
    "C versions of the record loops of logbroker.records.batch (optional; see batch.py).",
    -1,
    speedups_methods,
    NULL, /* m_slots */
    NULL, /* m_traverse */
    NULL, /* m_clear */
    NULL, /* m_free */
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    PyObject *module, *errors;

    errors = PyImport_ImportModule("logbroker.errors");
    if (errors == NULL)
        return NULL;
    CorruptRecordError = PyObject_GetAttrString(errors, "CorruptRecordError");
    Py_DECREF(errors);
    if (CorruptRecordError == NULL)
        return NULL;
    empty_tuple = PyTuple_New(0);
    if (empty_tuple == NULL)
        return NULL;
    module = PyModule_Create(&speedups_module);
    if (module == NULL)
        return NULL;
    return module;
}
