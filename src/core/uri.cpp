#include "ckpt/uri.h"

#include <array>

namespace ckpt {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t' || s.front() == '\n')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\n')) s.remove_suffix(1);
  return s;
}

}  // namespace

bool is_unset_location(std::string_view value) {
  static constexpr std::array<std::string_view, 5> kUnset = {
      "", "\"\"", "''", "{{.prevCheckpointPrefix}}", "{{.checkpointOutputPrefix}}"};
  value = trim(value);
  for (auto u : kUnset) {
    if (value == u) return true;
  }
  return false;
}

std::string join_key(std::string_view prefix, std::string_view key) {
  std::string out(prefix);
  if (key.empty()) return out;
  if (!out.empty() && out.back() != '/') out += '/';
  while (!key.empty() && key.front() == '/') key.remove_prefix(1);
  out += key;
  return out;
}

Result<Location> parse_location(std::string_view raw) {
  std::string_view value = trim(raw);
  if (is_unset_location(value)) {
    return Status(Errc::kInvalidArgument, "empty location");
  }
  Location loc;
  auto sep = value.find("://");
  if (sep == std::string_view::npos) {
    loc.scheme = "file";
    loc.path = std::string(value);
    loc.uri = loc.path;
    return loc;
  }
  std::string scheme(value.substr(0, sep));
  for (char& c : scheme) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  std::string_view rest = value.substr(sep + 3);
  if (scheme == "file") {
    // file:///abs/path or file://localhost/abs/path
    if (rest.rfind("localhost/", 0) == 0) rest.remove_prefix(9);
    if (rest.empty() || rest.front() != '/') {
      return Status(Errc::kInvalidArgument,
                    "file URI must be absolute (file:///path): '" + std::string(raw) + "'");
    }
    loc.scheme = "file";
    loc.path = std::string(rest);
    loc.uri = "file://" + loc.path;
    return loc;
  }
  if (scheme == "s3" || scheme == "gs" || scheme == "abfs" || scheme == "abfss") {
    auto slash = rest.find('/');
    loc.scheme = scheme;
    loc.bucket = std::string(rest.substr(0, slash));
    if (loc.bucket.empty()) {
      return Status(Errc::kInvalidArgument, "missing bucket in '" + std::string(raw) + "'");
    }
    std::string_view key = slash == std::string_view::npos ? "" : rest.substr(slash + 1);
    while (!key.empty() && key.front() == '/') key.remove_prefix(1);
    while (!key.empty() && key.back() == '/') key.remove_suffix(1);
    loc.path = std::string(key);
    loc.uri = scheme + "://" + loc.bucket + (loc.path.empty() ? "" : "/" + loc.path);
    return loc;
  }
  return Status(Errc::kInvalidArgument, "unsupported location scheme '" + scheme +
                                        "://' in '" + std::string(raw) +
                                        "' (supported: local paths, file://, s3://)");
}

}  // namespace ckpt

namespace ckpt {

Status check_relative_key(std::string_view key) {
  auto bad = [&](const char* why) {
    return Status(Errc::kCorrupt, "refusing unsafe key '" + std::string(key) + "': " + why);
  };
  if (key.empty()) return bad("empty");
  if (key.front() == '/') return bad("absolute path");
  if (key.find('\0') != std::string_view::npos) return bad("contains NUL");
  if (key.find('\\') != std::string_view::npos) return bad("contains a backslash");
  size_t start = 0;
  while (start <= key.size()) {
    size_t end = key.find('/', start);
    if (end == std::string_view::npos) end = key.size();
    std::string_view part = key.substr(start, end - start);
    if (part.empty()) return bad("empty path component");
    if (part == "." || part == "..") return bad("'.' or '..' component");
    start = end + 1;
  }
  return {};
}

}  // namespace ckpt
