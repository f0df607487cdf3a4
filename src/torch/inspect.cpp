#include "ckpt/torch/inspect.h"

#include <cstdio>
#include <cstring>
#include <map>
#include <set>
#include <sstream>

#include "ckpt/io.h"
#include "ckpt/torch/pytorch_checkpoint.h"
#include "ckpt/torch/torch_file.h"
#include "stats_client.h"

namespace ckpt::torch {
namespace {

const Value* dict_get(const Value& d, const std::string& key) {
  if (d.kind != Kind::kDict) return nullptr;
  for (size_t k = 0; k + 1 < d.items.size(); k += 2) {
    if (d.items[k]->kind == Kind::kStr && d.items[k]->s == key) return d.items[k + 1];
  }
  return nullptr;
}

bool has_tensor(const Value& v, size_t depth) {
  if (v.kind == Kind::kTensor) return true;
  if (depth > 100) return false;
  for (const Value* x : v.items) {
    if (has_tensor(*x, depth + 1)) return true;
  }
  return v.state && has_tensor(*v.state, depth + 1);
}

bool is_optimizer_state(const Value& v) {
  const Value* groups = dict_get(v, "param_groups");
  return dict_get(v, "state") && groups && groups->kind == Kind::kList;
}

// Position of key k in a dict, or -1.
int key_index(const Value& d, const char* k) {
  if (d.kind != Kind::kDict) return -1;
  for (size_t i = 0; i + 1 < d.items.size(); i += 2) {
    if (d.items[i]->kind == Kind::kStr && d.items[i]->s == k) return static_cast<int>(i / 2);
  }
  return -1;
}

// The optimizer class, from the hyperparameter names its param_groups carry (as torch 1.13 to
// 2.x write them; a state_dict does not name its class).
std::string optimizer_kind(const Value& opt) {
  const Value* groups = dict_get(opt, "param_groups");
  if (!groups || groups->items.empty()) return "unknown";
  const Value& g = *groups->items[0];
  auto has = [&](const char* k) { return dict_get(g, k) != nullptr; };
  if (has("history_size")) return "LBFGS";
  if (has("lr_decay") && has("initial_accumulator_value")) return "Adagrad";
  if (has("rho") && !has("betas")) return "Adadelta";
  if (has("momentum_decay")) return "NAdam";
  if (has("lambd") && has("t0")) return "ASGD";
  if (has("etas") && has("step_sizes")) return "Rprop";
  if (has("alpha") && has("centered")) return "RMSprop";
  if (has("betas") && has("amsgrad")) {
    // torch >= 2.5: AdamW is Adam with decoupled_weight_decay=True.
    if (const Value* d = dict_get(g, "decoupled_weight_decay"); d && d->kind == Kind::kBool)
      return d->b ? "AdamW" : "Adam";
    // torch 1.13 to 2.4 fill a group's defaults in each class's own order: Adam's has
    // "maximize" before "foreach", AdamW's "foreach" before "maximize".
    const int maximize = key_index(g, "maximize"), foreach = key_index(g, "foreach");
    if (maximize >= 0 && foreach >= 0) return foreach < maximize ? "AdamW" : "Adam";
    // Otherwise the defaults differ: AdamW's weight decay is 1e-2, Adam's 0.
    const Value* wd = dict_get(g, "weight_decay");
    if (wd && wd->kind == Kind::kFloat && wd->f != 0) return "AdamW";
    return "Adam";
  }
  if (has("betas")) {  // Adamax or RAdam
    const Value* st = dict_get(opt, "state");
    if (st && st->items.size() >= 2) {
      const Value& first = *st->items[1];
      if (dict_get(first, "exp_inf")) return "Adamax";
      if (dict_get(first, "exp_avg_sq")) return "RAdam";
    }
    if (has("decoupled_weight_decay")) return "RAdam";
    return has("maximize") ? "Adamax" : "RAdam";  // torch 1.13's RAdam has no maximize
  }
  if (has("momentum") && has("nesterov")) return "SGD";
  return "unknown";
}


std::string shape_str(const nlohmann::json& shape) {
  std::string s = "[";
  for (size_t k = 0; k < shape.size(); ++k)
    s += (k ? ", " : "") + std::to_string(shape[k].get<int64_t>());
  return s + "]";
}

std::string html_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&#39;";
        break;
      default:
        o.push_back(c);
    }
  }
  return o;
}

// "min -1 max 2.5 mean 0.3 std 1.1 nan 0 inf 1" (null: no finite value)
std::string stats_text(const nlohmann::json& t) {
  if (!t.contains("stats") || t["stats"].is_null())
    return "n/a (" + t.value("stats_error", std::string("no statistics")) + ")";
  const auto& st = t["stats"];
  std::string o;
  char buf[64];
  for (const char* k : {"min", "max", "mean", "std"}) {
    if (st[k].is_null()) {
      std::snprintf(buf, sizeof buf, "%s%s -", o.empty() ? "" : " ", k);
    } else {
      std::snprintf(buf, sizeof buf, "%s%s %.6g", o.empty() ? "" : " ", k, st[k].get<double>());
    }
    o += buf;
  }
  return o + " nan " + st["nan"].dump() + " inf " + st["inf"].dump();
}

}  // namespace

bool looks_like_torch_file(RandomAccessFile& file) {
  uint8_t head[4] = {};
  if (file.size() >= 4) {
    auto n = file.read_at(0, head, 4);
    if (n.ok() && *n == 4 && std::memcmp(head, "PK\x03\x04", 4) == 0) return true;
  }
  return is_legacy_torch_file(file);
}

Result<nlohmann::json> inspect(RandomAccessFile& file, const InspectOptions& opts) {
  CKPT_ASSIGN_OR_RETURN(auto tf, TorchFile::open(file, /*strict=*/false));
  const Value& root = tf->root();
  nlohmann::json j;
  j["format"] = "torch.save zip";
  j["archive_prefix"] = tf->prefix().substr(0, tf->prefix().size() - 1);
  j["version"] = tf->version();
  j["file_size"] = file.size();
  j["records"] = tf->zip().entries().size();
  j["pickle_bytes"] = tf->pickle_size();

  const Value* module = dict_get(root, kModuleKey);
  const Value* optimizer = dict_get(root, kOptimizerKey);
  std::string kind = "other";
  if (module || optimizer) {
    kind = "pytorch_checkpoint";
  } else if (is_optimizer_state(root)) {
    kind = "optimizer_state_dict";
    optimizer = &root;
  } else if (root.kind == Kind::kDict && !root.items.empty() && !has_tensor(root, 0)) {
    bool string_keys = true;
    for (size_t k = 0; k < root.items.size(); k += 2)
      string_keys = string_keys && root.items[k]->kind == Kind::kStr;
    // flytekit writes a hyperparameters-only PyTorchCheckpoint as exactly such a dict.
    kind = string_keys ? "pytorch_checkpoint" : "dict";
  } else if (root.kind == Kind::kDict) {
    bool all_tensors = !root.items.empty();
    for (size_t k = 1; k < root.items.size(); k += 2)
      all_tensors = all_tensors && root.items[k]->kind == Kind::kTensor;
    kind = all_tensors ? "state_dict" : "dict";
  }
  j["kind"] = kind;
  auto keys = nlohmann::json::array();
  if (root.kind == Kind::kDict) {
    for (size_t k = 0; k + 1 < root.items.size(); k += 2) keys.push_back(key_repr(*root.items[k]));
  }
  j["top_level_keys"] = keys;

  auto tensors = nlohmann::json::array();
  std::map<std::string, nlohmann::json> by_dtype;
  std::set<std::pair<const void*, std::string>> storages;
  uint64_t storage_bytes = 0, parameter_count = 0;
  const std::string module_prefix = std::string(kModuleKey) + ".";
  CKPT_RETURN_IF_ERROR(
      walk_tensors(root, "", [&](const std::string& name, const TensorRef& t) -> Status {
        const uint64_t numel = t.numel();
        const uint64_t nbytes = numel * dtype_size(t.dtype);
        nlohmann::json e = {{"name", name},
                            {"dtype", t.dtype},
                            {"shape", t.shape},
                            {"stride", t.stride},
                            {"numel", numel},
                            {"nbytes", nbytes},
                            {"storage", t.storage_key},
                            {"offset", t.offset},
                            {"device", t.device},
                            {"contiguous", t.contiguous()},
                            {"requires_grad", t.requires_grad},
                            {"parameter", t.parameter}};
        tensors.push_back(std::move(e));
        auto& d = by_dtype[t.dtype];
        if (d.is_null()) d = {{"tensors", 0}, {"elements", 0}, {"bytes", 0}};
        d["tensors"] = d["tensors"].get<uint64_t>() + 1;
        d["elements"] = d["elements"].get<uint64_t>() + numel;
        d["bytes"] = d["bytes"].get<uint64_t>() + nbytes;
        if (storages.emplace(t.owner, t.storage_key).second) {
          if (const ZipEntry* rec = tf->storage_entry(t.storage_key)) storage_bytes += rec->size;
        }
        const bool in_module = kind == "pytorch_checkpoint"
                                   ? name.compare(0, module_prefix.size(), module_prefix) == 0
                                   : kind == "state_dict" || kind == "dict" || kind == "other";
        if (in_module) parameter_count += numel;
        return {};
      }));
  if (opts.stats) CKPT_RETURN_IF_ERROR(add_tensor_stats(*tf, tensors));
  j["tensors"] = tensors;
  j["tensor_count"] = tensors.size();
  j["storage_count"] = storages.size();
  j["storage_bytes"] = storage_bytes;
  j["totals_by_dtype"] = by_dtype.empty() ? nlohmann::json::object() : nlohmann::json(by_dtype);
  j["parameter_count"] = parameter_count;

  if (optimizer && is_optimizer_state(*optimizer)) {
    nlohmann::json o;
    o["kind"] = optimizer_kind(*optimizer);
    auto groups = nlohmann::json::array();
    for (const Value* g : dict_get(*optimizer, "param_groups")->items)
      groups.push_back(value_to_display_json(*g));
    o["param_groups"] = groups;
    const Value* st = dict_get(*optimizer, "state");
    o["state_entries"] = st ? st->items.size() / 2 : 0;
    j["optimizer"] = o;
  } else {
    j["optimizer"] = nullptr;
  }
  auto hp = nlohmann::json::object();
  if (kind == "pytorch_checkpoint") {
    for (size_t k = 0; k + 1 < root.items.size(); k += 2) {
      std::string key = key_repr(*root.items[k]);
      if (key == kModuleKey || key == kOptimizerKey) continue;
      hp[key] = value_to_display_json(*root.items[k + 1]);
    }
  }
  j["hyperparameters"] = hp;
  j["unsafe_globals"] = tf->doc().unsafe_globals;
  j["bytes_fetched"] = file.bytes_fetched();
  return j;
}

std::string render_text(const nlohmann::json& s) {
  std::ostringstream o;
  o << "Format:      " << s.value("format", "?") << " (version " << s.value("version", "?")
    << ", prefix '" << s.value("archive_prefix", "") << "/', "
    << format_bytes(s.value("file_size", 0ull)) << ")\n";
  o << "Kind:        " << s.value("kind", "?") << "\n";
  o << "Top-level:   ";
  const auto& keys = s["top_level_keys"];
  for (size_t k = 0; k < keys.size(); ++k) o << (k ? ", " : "") << keys[k].get<std::string>();
  o << "\n";
  if (!s["unsafe_globals"].empty()) {
    o << "WARNING:     the pickle names globals outside torch's weights_only allow-list (not "
         "executed):";
    for (const auto& g : s["unsafe_globals"]) o << " " << g.get<std::string>();
    o << "\n";
  }
  o << "\nTensors (" << s["tensors"].size() << "):\n";
  size_t w = 4;
  for (const auto& t : s["tensors"]) w = std::max(w, t["name"].get<std::string>().size());
  w = std::min<size_t>(w, 70);
  char line[512];
  const bool stats = !s["tensors"].empty() && s["tensors"][0].contains("stats");
  std::snprintf(line, sizeof line, "  %-*s  %-10s  %-20s  %10s%s\n", static_cast<int>(w), "name",
                "dtype", "shape", "size", stats ? "  stats" : "");
  o << line;
  for (const auto& t : s["tensors"]) {
    std::snprintf(line, sizeof line, "  %-*s  %-10s  %-20s  %10s", static_cast<int>(w),
                  t["name"].get<std::string>().c_str(), t["dtype"].get<std::string>().c_str(),
                  shape_str(t["shape"]).c_str(), format_bytes(t["nbytes"].get<uint64_t>()).c_str());
    o << line << (stats ? "  " + stats_text(t) : std::string()) << "\n";
  }
  o << "\nTotals by dtype:\n";
  for (const auto& [dt, d] : s["totals_by_dtype"].items()) {
    std::snprintf(line, sizeof line, "  %-10s %6llu tensors %14llu elements %12s\n", dt.c_str(),
                  static_cast<unsigned long long>(d["tensors"].get<uint64_t>()),
                  static_cast<unsigned long long>(d["elements"].get<uint64_t>()),
                  format_bytes(d["bytes"].get<uint64_t>()).c_str());
    o << line;
  }
  o << "Parameters:  " << s.value("parameter_count", 0ull) << " elements in "
    << s.value("storage_count", 0ull) << " storages (" << format_bytes(s.value("storage_bytes", 0ull))
    << ")\n";
  if (!s["optimizer"].is_null()) {
    const auto& opt = s["optimizer"];
    o << "Optimizer:   " << opt["kind"].get<std::string>() << ", " << opt["param_groups"].size()
      << " param group(s), state for " << opt["state_entries"] << " parameter(s)\n";
    for (size_t k = 0; k < opt["param_groups"].size(); ++k) {
      nlohmann::json g = opt["param_groups"][k];
      if (g.is_object() && g.contains("params"))
        g["params"] = std::to_string(g["params"].size()) + " params";
      o << "  group " << k << ": " << g.dump() << "\n";
    }
  }
  if (!s["hyperparameters"].empty()) {
    o << "Hyperparameters:\n";
    for (const auto& [k, v] : s["hyperparameters"].items())
      o << "  " << k << " = " << v.dump() << "\n";
  }
  return o.str();
}

std::string render_html(const nlohmann::json& s) {
  std::ostringstream o;
  o << "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>ckpt inspect: "
    << html_escape(s.value("archive_prefix", "checkpoint")) << "</title>\n<style>"
    << "body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}"
    << "table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:2px "
       "8px;text-align:left}"
    << "th{background:#f0f0f0}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    << ".warn{background:#fee;border:1px solid #c00;padding:.5em}</style></head><body>\n";
  o << "<h1>PyTorch checkpoint: " << html_escape(s.value("archive_prefix", "")) << "</h1>\n";
  o << "<p id=\"summary\">" << html_escape(s.value("format", "")) << ", version "
    << html_escape(s.value("version", "")) << ", kind <b>" << html_escape(s.value("kind", ""))
    << "</b>, " << format_bytes(s.value("file_size", 0ull)) << ", " << s["tensors"].size()
    << " tensors, <span id=\"parameter-count\">" << s.value("parameter_count", 0ull)
    << "</span> parameters</p>\n";
  if (!s["unsafe_globals"].empty()) {
    o << "<p class=\"warn\" id=\"unsafe-globals\">Globals outside the weights_only allow-list (not "
         "executed):";
    for (const auto& g : s["unsafe_globals"])
      o << " <code>" << html_escape(g.get<std::string>()) << "</code>";
    o << "</p>\n";
  }
  o << "<h2>Top-level keys</h2><ul>";
  for (const auto& k : s["top_level_keys"])
    o << "<li><code>" << html_escape(k.get<std::string>()) << "</code></li>";
  o << "</ul>\n";
  if (!s["hyperparameters"].empty()) {
    o << "<h2>Hyperparameters</h2><table "
         "id=\"hyperparameters\"><tr><th>name</th><th>value</th></tr>";
    for (const auto& [k, v] : s["hyperparameters"].items()) {
      o << "<tr><td>" << html_escape(k) << "</td><td><code>" << html_escape(v.dump())
        << "</code></td></tr>";
    }
    o << "</table>\n";
  }
  if (!s["optimizer"].is_null()) {
    const auto& opt = s["optimizer"];
    o << "<h2>Optimizer: <span id=\"optimizer-kind\">"
      << html_escape(opt["kind"].get<std::string>()) << "</span></h2><table>";
    for (size_t k = 0; k < opt["param_groups"].size(); ++k) {
      nlohmann::json g = opt["param_groups"][k];
      if (g.is_object() && g.contains("params"))
        g["params"] = std::to_string(g["params"].size()) + " params";
      o << "<tr><th>group " << k << "</th><td><code>" << html_escape(g.dump())
        << "</code></td></tr>";
    }
    o << "</table>\n";
  }
  o << "<h2>Totals by "
       "dtype</h2><table><tr><th>dtype</th><th>tensors</th><th>elements</th><th>size</th></tr>";
  for (const auto& [dt, d] : s["totals_by_dtype"].items()) {
    o << "<tr><td>" << html_escape(dt) << "</td><td class=n>" << d["tensors"] << "</td><td class=n>"
      << d["elements"] << "</td><td class=n>" << format_bytes(d["bytes"].get<uint64_t>())
      << "</td></tr>";
  }
  const bool stats = !s["tensors"].empty() && s["tensors"][0].contains("stats");
  o << "</table>\n<h2>Tensors</h2><table "
       "id=\"tensors\"><tr><th>name</th><th>dtype</th><th>shape</th><th>size</th>";
  if (stats) o << "<th>min</th><th>max</th><th>mean</th><th>std</th><th>NaN</th><th>Inf</th>";
  o << "</tr>\n";
  for (const auto& t : s["tensors"]) {
    o << "<tr><td>" << html_escape(t["name"].get<std::string>()) << "</td><td>"
      << html_escape(t["dtype"].get<std::string>()) << "</td><td>" << shape_str(t["shape"])
      << "</td><td class=n>" << format_bytes(t["nbytes"].get<uint64_t>()) << "</td>";
    if (stats) {
      if (!t.contains("stats") || t["stats"].is_null()) {
        o << "<td colspan=6>" << html_escape(t.value("stats_error", std::string("n/a")))
          << "</td>";
      } else {
        const auto& st = t["stats"];
        for (const char* k : {"min", "max", "mean", "std"}) {
          char buf[32] = "-";
          if (!st[k].is_null()) std::snprintf(buf, sizeof buf, "%.6g", st[k].get<double>());
          o << "<td class=n>" << buf << "</td>";
        }
        o << "<td class=n>" << st["nan"] << "</td><td class=n>" << st["inf"] << "</td>";
      }
    }
    o << "</tr>\n";
  }
  o << "</table>\n</body></html>\n";
  return o.str();
}

}  // namespace ckpt::torch
