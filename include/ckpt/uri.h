// Checkpoint locations: local paths, file://, s3://. Parsing is pure and tested.
#pragma once

#include <string>
#include <string_view>

#include "ckpt/status.h"

namespace ckpt {

struct Location {
  std::string scheme;  // "file" or "s3" (later "gs", "abfs", "abfss")
  std::string bucket;  // object stores: bucket/container; empty for file
  std::string path;    // file: the local path; object stores: key prefix, no leading '/'
  std::string uri;     // canonical form, for messages

  bool is_local() const { return scheme == "file"; }
};

// True for the values Flyte renders for "not provided": empty, `""` (two quote
// characters), `''` and the unrendered templates {{.prevCheckpointPrefix}} /
// {{.checkpointOutputPrefix}}.
bool is_unset_location(std::string_view value);

// Parses a user-supplied location. A value without "scheme://" is a local path.
Result<Location> parse_location(std::string_view value);

// Accepts only keys that stay inside a directory when joined to it: relative, '/'-separated,
// no empty, "." or ".." components, no NUL or backslash. The error names the key.
Status check_relative_key(std::string_view key);

// Joins a key prefix and a relative key with exactly one '/'.
std::string join_key(std::string_view prefix, std::string_view key);

}  // namespace ckpt
