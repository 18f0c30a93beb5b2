#pragma once
// The `pseudonymize` process function: replaces chosen string fields of
// every record by a keyed pseudonym, so that a stream can leave the clinical
// network (to research, to a vendor's analytics) without its identifiers
// while records of one patient still share one value and can be joined.
//
//   pseudonym(value) = lower-case hex of HMAC-SHA256(key, value),
//                      its first `length` digits
//
// The pseudonym depends on the key and the value only: the same in every
// subtask, run, restart and replay, and the same for a value in any field
// (patient_id in one stream and in another). Without the key it cannot be
// reversed or recomputed, even for a guessed identifier (a plain hash of a
// medical record number can be, by hashing every number). Changing the key
// changes every pseudonym.
//
// The key never appears in the job spec or the job graph: the TaskManagers
// read it, when the task opens, from a file (`key_file`: its bytes, one
// trailing "\n" or "\r\n" stripped) or an environment variable (`key_env`).
// The client that compiles the job neither needs nor reads it. A key of
// fewer than 16 bytes fails the task; use 32 random bytes (RFC 2104 advises
// at least the digest's length). The function keeps the two hashed padded
// key blocks, not the key.
//
// Output: the input's schema and event time, the chosen fields replaced; a
// null stays null; every other field passes unchanged. Keeps no state, so
// rescaling and restarts need nothing of it. No record is a dead letter and
// nothing is logged about values.
//
// Parameters:
//   fields    names of string fields of the input, comma-separated; required.
//   key_file  path of the key file on each TaskManager      } exactly one
//   key_env   name of the environment variable with the key } of the two
//   length    hex digits kept, 16 to 64; default 32 (128 bits: no two
//             patients' pseudonyms collide in practice; 16 digits, 64 bits,
//             still make a collision unlikely below some 100 million values).
//
// Per record: two SHA-256 compressions per field of up to 55 bytes, and no
// allocation once the output rows' strings have grown.

#include "runtime/operators/process_function_registry.h"

namespace vstream {

void RegisterPseudonymizeFunction(ProcessFunctionRegistry& registry);

}  // namespace vstream
