/*
 * strata-deflate: a Node-API addon that deflates one run of parallel gzip with libdeflate
 * (Debian's libdeflate-dev, linked statically), which on layer content is 1.2-1.6x faster than
 * zlib at the same level and compresses a little better (docs/decisions.md has the measurements).
 * Loaded by src/archive/deflate-engine.ts; without it strata deflates with zlib.
 *
 * libdeflate compresses whole buffers only, into a complete deflate stream whose last block is
 * final. A run of parallel gzip (src/archive/gzip-worker.ts) must instead end byte-aligned and
 * not final unless it is the end of the layer, so that the runs' outputs can be concatenated
 * into one stream: what zlib's Z_SYNC_FLUSH produces. So for a run that does not end the
 * stream, the final block is found by walking the stream's blocks (decoding their Huffman codes
 * up to each end-of-block code, without producing output), its BFINAL bit is cleared, and an
 * empty stored block (what a sync flush writes) brings the stream to a byte boundary. The walk
 * must end exactly in the output's last byte, with zero padding after it, or the run is refused
 * (the caller then deflates it with zlib): a stream the walk misread is never emitted.
 *
 * deflateRaw(data: Uint8Array, level: 1..12, final: boolean) -> Uint8Array | null
 */
#include <libdeflate.h>
#include <node_api.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---- Walking a deflate stream (RFC 1951) ---- */

typedef struct {
  const uint8_t *in;
  size_t length;
  size_t next;     /* next byte to load */
  uint64_t bits;   /* loaded bits, least significant first */
  unsigned count;  /* how many */
} bit_reader;

/*
 * Tops the bit buffer up to at least 56 bits: eight bytes at a time inside the input, one at a
 * time near its end, and zeros past it (the caller checks it did not read there).
 */
static inline void refill(bit_reader *r) {
  if (r->count > 56) return;
  if (r->next + 8 <= r->length) {
    uint64_t word;
    memcpy(&word, r->in + r->next, 8); /* little-endian hosts only, as x86-64 and arm64 are */
    r->bits |= word << r->count;
    r->next += (63 - r->count) >> 3;
    r->count |= 56;
    return;
  }
  while (r->count <= 56) {
    uint64_t byte = r->next < r->length ? r->in[r->next] : 0;
    r->bits |= byte << r->count;
    r->next++;
    r->count += 8;
  }
}

static inline uint32_t take(bit_reader *r, unsigned n) {
  uint32_t value = (uint32_t)(r->bits & ((UINT64_C(1) << n) - 1));
  r->bits >>= n;
  r->count -= n;
  return value;
}

/* Position in bits from the start of the input. */
static inline size_t bit_position(const bit_reader *r) { return r->next * 8 - r->count; }

/* Past the input: what was read there was padding the reader made up. */
static inline bool overran(const bit_reader *r) { return bit_position(r) > r->length * 8; }

#define MAX_CODE_BITS 15
#define LITLEN_SYMBOLS 288
#define DIST_SYMBOLS 32
/* Codes up to this long are decoded with one table lookup; longer (rarer) ones bit by bit. */
#define PRIMARY_BITS 10

/*
 * One canonical Huffman code: a table indexed by the next PRIMARY_BITS input bits whose entries
 * hold symbol << 4 | code length for the codes that fit (0 elsewhere), and the code's counts per
 * length and symbols in canonical order for the others.
 */
typedef struct {
  uint16_t primary[1 << PRIMARY_BITS];
  uint16_t counts[MAX_CODE_BITS + 1];
  uint16_t symbols[LITLEN_SYMBOLS];
} huffman_table;

static bool build_table(huffman_table *table, const uint8_t *lengths, unsigned symbols) {
  memset(table->counts, 0, sizeof table->counts);
  for (unsigned s = 0; s < symbols; s++) table->counts[lengths[s]]++;
  table->counts[0] = 0;
  uint16_t offsets[MAX_CODE_BITS + 2];
  unsigned next_code[MAX_CODE_BITS + 1];
  unsigned code = 0;
  offsets[1] = 0;
  for (unsigned len = 1; len <= MAX_CODE_BITS; len++) {
    code = (code + table->counts[len - 1]) << 1;
    next_code[len] = code;
    if (code + table->counts[len] > (1u << len)) return false; /* over-subscribed */
    offsets[len + 1] = (uint16_t)(offsets[len] + table->counts[len]);
  }
  memset(table->primary, 0, sizeof table->primary);
  for (unsigned s = 0; s < symbols; s++) {
    unsigned len = lengths[s];
    if (len == 0) continue;
    table->symbols[offsets[len]++] = (uint16_t)s;
    if (len > PRIMARY_BITS) continue;
    unsigned c = next_code[len]++;
    /* Codes are sent most significant bit first; the reader sees them reversed. */
    unsigned reversed = 0;
    for (unsigned i = 0; i < len; i++) reversed |= ((c >> i) & 1u) << (len - 1 - i);
    for (unsigned i = reversed; i < (1u << PRIMARY_BITS); i += 1u << len)
      table->primary[i] = (uint16_t)(s << 4 | len);
  }
  return true;
}

/* A code longer than PRIMARY_BITS (or no code): walked one bit at a time, canonically. */
static int decode_slowly(bit_reader *r, const huffman_table *table) {
  int code = 0, first = 0, index = 0;
  for (unsigned len = 1; len <= MAX_CODE_BITS; len++) {
    code |= (int)((r->bits >> (len - 1)) & 1u);
    int count = table->counts[len];
    if (code - count < first) {
      take(r, len);
      return table->symbols[index + (code - first)];
    }
    index += count;
    first += count;
    first <<= 1;
    code <<= 1;
  }
  return -1;
}

/* The next symbol of `table`, or -1 for a bit pattern that is no code. */
static inline int decode(bit_reader *r, const huffman_table *table) {
  uint16_t entry = table->primary[r->bits & ((1u << PRIMARY_BITS) - 1)];
  if (entry == 0) return decode_slowly(r, table);
  take(r, entry & 15);
  return entry >> 4;
}

static const uint8_t length_extra[29] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2,
                                         2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0};
static const uint8_t distance_extra[30] = {0, 0, 0, 0, 1, 1, 2, 2,  3,  3,  4,  4,  5,  5,  6,
                                           6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13, 13};

typedef struct {
  huffman_table litlen;
  huffman_table distance;
  huffman_table lengths;
} walker_tables;

/* Reads a block's symbols up to its end-of-block code: the walk's hot loop. */
static bool skip_symbols(bit_reader *r, const walker_tables *t) {
  for (;;) {
    refill(r);
    int symbol = decode(r, &t->litlen);
    if (symbol < 0) return false;
    if (symbol < 256) continue;
    if (symbol == 256) return !overran(r);
    symbol -= 257;
    if (symbol >= 29) return false;
    take(r, length_extra[symbol]);
    /* 15 + 5 + 15 + 13 bits at most since the refill: within the 56 loaded. */
    int distance = decode(r, &t->distance);
    if (distance < 0 || distance >= 30) return false;
    take(r, distance_extra[distance]);
    if (overran(r)) return false;
  }
}

static bool read_dynamic_tables(bit_reader *r, walker_tables *t) {
  static const uint8_t order[19] = {16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15};
  refill(r);
  unsigned litlen_count = take(r, 5) + 257;
  unsigned distance_count = take(r, 5) + 1;
  unsigned length_count = take(r, 4) + 4;
  if (litlen_count > 286 || distance_count > 30) return false;
  uint8_t code_lengths[19] = {0};
  for (unsigned i = 0; i < length_count; i++) {
    refill(r);
    code_lengths[order[i]] = (uint8_t)take(r, 3);
  }
  if (!build_table(&t->lengths, code_lengths, 19)) return false;
  uint8_t lengths[LITLEN_SYMBOLS + DIST_SYMBOLS] = {0};
  unsigned total = litlen_count + distance_count;
  for (unsigned i = 0; i < total;) {
    refill(r);
    int symbol = decode(r, &t->lengths);
    if (symbol < 0) return false;
    if (symbol < 16) {
      lengths[i++] = (uint8_t)symbol;
      continue;
    }
    unsigned repeat;
    uint8_t value = 0;
    if (symbol == 16) {
      if (i == 0) return false;
      value = lengths[i - 1];
      repeat = 3 + take(r, 2);
    } else if (symbol == 17) {
      repeat = 3 + take(r, 3);
    } else {
      repeat = 11 + take(r, 7);
    }
    if (i + repeat > total) return false;
    while (repeat-- > 0) lengths[i++] = value;
  }
  if (lengths[256] == 0) return false; /* no end-of-block code */
  return build_table(&t->litlen, lengths, litlen_count) &&
         build_table(&t->distance, lengths + litlen_count, distance_count) && !overran(r);
}

static void fixed_tables(walker_tables *t) {
  uint8_t lengths[LITLEN_SYMBOLS];
  for (unsigned s = 0; s < LITLEN_SYMBOLS; s++)
    lengths[s] = s < 144 ? 8 : s < 256 ? 9 : s < 280 ? 7 : 8;
  build_table(&t->litlen, lengths, LITLEN_SYMBOLS);
  uint8_t distances[DIST_SYMBOLS];
  memset(distances, 5, sizeof distances);
  build_table(&t->distance, distances, DIST_SYMBOLS);
}

/*
 * Walks a complete deflate stream. On success returns true with the bit position of the final
 * block's header and of the end of that block.
 */
static bool find_final_block(const uint8_t *in, size_t length, walker_tables *t, size_t *final_start,
                             size_t *end) {
  bit_reader r = {in, length, 0, 0, 0};
  for (;;) {
    size_t start = bit_position(&r);
    refill(&r);
    unsigned final = take(&r, 1);
    unsigned type = take(&r, 2);
    if (type == 0) {
      take(&r, r.count & 7); /* to the byte boundary */
      refill(&r);
      unsigned len = take(&r, 16);
      unsigned nlen = take(&r, 16);
      if ((len ^ 0xffff) != nlen) return false;
      size_t after = bit_position(&r) / 8 + len;
      if (after > length) return false;
      r.next = after;
      r.bits = 0;
      r.count = 0;
    } else if (type == 1) {
      fixed_tables(t);
      if (!skip_symbols(&r, t)) return false;
    } else if (type == 2) {
      if (!read_dynamic_tables(&r, t) || !skip_symbols(&r, t)) return false;
    } else {
      return false;
    }
    if (overran(&r)) return false;
    if (final) {
      *final_start = start;
      *end = bit_position(&r);
      return true;
    }
  }
}

/* ---- The addon ---- */

/* One per Node environment (the main thread, each worker thread), freed with it. */
typedef struct {
  struct libdeflate_compressor *compressors[13];
  walker_tables tables;
} addon_state;

static void free_state(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  addon_state *state = data;
  for (int level = 0; level < 13; level++)
    if (state->compressors[level] != NULL) libdeflate_free_compressor(state->compressors[level]);
  free(state);
}

static napi_value fail(napi_env env, const char *message) {
  napi_throw_error(env, "STRATA_DEFLATE", message);
  return NULL;
}

/*
 * deflateRaw(data, level, final): the raw deflate of `data`; when not `final`, ending with an
 * empty stored block and not final, as after zlib's Z_SYNC_FLUSH. Returns null when the walk
 * cannot vouch for the stream (the caller then uses zlib).
 */
static napi_value deflate_raw(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc != 3)
    return fail(env, "deflateRaw takes (data, level, final)");
  bool is_typed = false;
  napi_typedarray_type type;
  size_t length;
  void *data;
  napi_value input_buffer;
  size_t offset;
  if (napi_is_typedarray(env, argv[0], &is_typed) != napi_ok || !is_typed ||
      napi_get_typedarray_info(env, argv[0], &type, &length, &data, &input_buffer, &offset) != napi_ok ||
      type != napi_uint8_array)
    return fail(env, "deflateRaw: data must be a Uint8Array");
  int32_t level;
  if (napi_get_value_int32(env, argv[1], &level) != napi_ok || level < 1 || level > 12)
    return fail(env, "deflateRaw: level must be an integer 1-12");
  bool final;
  if (napi_get_value_bool(env, argv[2], &final) != napi_ok)
    return fail(env, "deflateRaw: final must be a boolean");
  addon_state *state;
  if (napi_get_instance_data(env, (void **)&state) != napi_ok || state == NULL)
    return fail(env, "deflateRaw: the addon was not initialised");
  if (state->compressors[level] == NULL) state->compressors[level] = libdeflate_alloc_compressor(level);
  if (state->compressors[level] == NULL) return fail(env, "deflateRaw: out of memory");

  /* Room for the stream and the 5 bytes of the flush; a Buffer, which Node does not zero-fill. */
  size_t bound = libdeflate_deflate_compress_bound(state->compressors[level], length) + 5;
  napi_value output_buffer, array_buffer;
  uint8_t *out;
  napi_typedarray_type output_type;
  size_t output_length, output_offset;
  void *output_data;
  if (napi_create_buffer(env, bound, (void **)&out, &output_buffer) != napi_ok ||
      napi_get_typedarray_info(env, output_buffer, &output_type, &output_length, &output_data, &array_buffer,
                               &output_offset) != napi_ok)
    return fail(env, "deflateRaw: cannot allocate the output");
  size_t written = libdeflate_deflate_compress(state->compressors[level], data, length, out, bound - 5);
  if (written == 0) return fail(env, "deflateRaw: compression failed");

  if (!final) {
    size_t final_start, end;
    if (!find_final_block(out, written, &state->tables, &final_start, &end)) goto refuse;
    /* The stream must end in its last byte, the bits after it all zero. */
    if ((end + 7) / 8 != written) goto refuse;
    if (end % 8 != 0 && (out[written - 1] >> (end % 8)) != 0) goto refuse;
    out[final_start / 8] &= (uint8_t) ~(1u << (final_start % 8));
    /*
     * An empty, non-final stored block: its 3 header bits (all zero) go in the padding when
     * there is room for them, else in a byte of their own; then LEN 0 and NLEN 0xffff.
     */
    unsigned padding = (unsigned)(written * 8 - end);
    if (padding < 3) out[written++] = 0;
    out[written++] = 0x00;
    out[written++] = 0x00;
    out[written++] = 0xff;
    out[written++] = 0xff;
  }
  /* A view of the written bytes; the ArrayBuffer is the output's alone (Node pools no Buffer
     made here), so it can be transferred to another thread. */
  napi_value view;
  if (napi_create_typedarray(env, napi_uint8_array, written, array_buffer, output_offset, &view) != napi_ok)
    return fail(env, "deflateRaw: cannot make the result");
  return view;

refuse : {
  napi_value null;
  napi_get_null(env, &null);
  return null;
}
}

NAPI_MODULE_INIT() {
  addon_state *state = calloc(1, sizeof *state);
  if (state == NULL || napi_set_instance_data(env, state, free_state, NULL) != napi_ok) {
    free(state);
    napi_throw_error(env, "STRATA_DEFLATE", "strata-deflate: cannot initialise");
    return NULL;
  }
  napi_value function;
  if (napi_create_function(env, "deflateRaw", NAPI_AUTO_LENGTH, deflate_raw, NULL, &function) != napi_ok)
    return NULL;
  if (napi_set_named_property(env, exports, "deflateRaw", function) != napi_ok) return NULL;
  return exports;
}
