// Manifest files: .ckpt/manifests/<time>-<host>-<pid>-<token>.json, one per save, written last.
// One file per save (never a shared file rewritten in place) is what lets concurrent savers
// into one destination keep each other's records; names sort by time, newest record wins.
#include <nlohmann/json.hpp>

#include "ckpt/checkpoint.h"
#include "ckpt/hash.h"

namespace ckpt {

std::string encode_manifest(const std::map<std::string, ManifestEntry>& files) {
  nlohmann::ordered_json doc;
  doc["ckpt_manifest"] = 1;
  doc["writer"] = std::string("ckpt ") + CKPT_VERSION;
  doc["hash"] = kHashAlgorithm;
  auto& out = doc["files"] = nlohmann::ordered_json::object();
  for (const auto& [key, entry] : files) {
    out[key] = {{"size", entry.size}, {"hash", entry.hash}};
  }
  return doc.dump(1) + "\n";
}

Result<std::map<std::string, ManifestEntry>> decode_manifest(const std::string& text,
                                                             const std::string& name) {
  auto bad = [&](const std::string& why) {
    return Status(Errc::kCorrupt, "manifest '" + name + "' is unreadable: " + why);
  };
  auto doc = nlohmann::json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) return bad("not valid JSON");
  if (doc.value("ckpt_manifest", 0) != 1) return bad("unknown manifest version");
  if (doc.value("hash", "") != kHashAlgorithm) return bad("unknown hash algorithm");
  auto files = doc.find("files");
  if (files == doc.end() || !files->is_object()) return bad("no file list");
  std::map<std::string, ManifestEntry> out;
  for (const auto& [key, entry] : files->items()) {
    if (!entry.is_object() || !entry.contains("size") || !entry["size"].is_number_unsigned() ||
        !entry.contains("hash") || !entry["hash"].is_string()) {
      return bad("bad entry for '" + key + "'");
    }
    out[key] = ManifestEntry{entry["size"].get<uint64_t>(), entry["hash"].get<std::string>()};
  }
  return out;
}

}  // namespace ckpt
