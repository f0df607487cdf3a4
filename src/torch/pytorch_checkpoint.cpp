#include "ckpt/torch/pytorch_checkpoint.h"

#include <cmath>
#include <filesystem>
#include <fstream>

#include "ckpt/torch/torch_file.h"
#include "ckpt/uri.h"

namespace fs = std::filesystem;

namespace ckpt::torch {
namespace {

constexpr size_t kMaxJsonDepth = 200;

struct Opened {
  OpenedFile handle;
  std::unique_ptr<TorchFile> file;
};

Result<Opened> open_torch(const std::string& uri, const char* what, const StorageOptions& so) {
  Opened o;
  auto h = open_location(uri, so);
  if (!h.ok()) return h.status().with_context(std::string(what) + " " + uri);
  o.handle = std::move(h).value();
  auto tf = TorchFile::open(*o.handle.file, /*strict=*/true);
  if (!tf.ok()) return tf.status().with_context(std::string(what) + " " + uri);
  o.file = std::move(tf).value();
  return o;
}

std::string archive_name_for(const std::string& uri) {
  // torch.save(obj, "dir/x.pt") names its top folder "x"; a stream gets "archive".
  if (uri == "-") return "archive";
  std::string stem = fs::path(uri).stem().string();
  return stem.empty() ? "archive" : stem;
}

}  // namespace

Result<Value*> json_to_value(const nlohmann::ordered_json& j, Document& doc) {
  struct Rec {
    static Result<Value*> go(const nlohmann::ordered_json& j, Document& doc, size_t depth) {
      if (depth > kMaxJsonDepth)
        return Status(Errc::kInvalidArgument, "hyperparameters nest too deeply");
      Value* v;
      switch (j.type()) {
        case nlohmann::json::value_t::null:
          return doc.make(Kind::kNone);
        case nlohmann::json::value_t::boolean:
          v = doc.make(Kind::kBool);
          v->b = j.get<bool>();
          return v;
        case nlohmann::json::value_t::number_integer:
          return doc.make_int(j.get<int64_t>());
        case nlohmann::json::value_t::number_unsigned: {
          v = doc.make(Kind::kInt);
          if (!int_from_decimal(std::to_string(j.get<uint64_t>()), v))
            return Status(Errc::kInternal, "int");
          return v;
        }
        case nlohmann::json::value_t::number_float:
          v = doc.make(Kind::kFloat);
          v->f = j.get<double>();
          return v;
        case nlohmann::json::value_t::string:
          return doc.make_str(j.get<std::string>());
        case nlohmann::json::value_t::array:
          v = doc.make(Kind::kList);
          for (const auto& x : j) {
            CKPT_ASSIGN_OR_RETURN(Value * c, go(x, doc, depth + 1));
            v->items.push_back(c);
          }
          return v;
        case nlohmann::json::value_t::object:
          v = doc.make(Kind::kDict);
          for (const auto& [k, x] : j.items()) {
            v->items.push_back(doc.make_str(k));
            CKPT_ASSIGN_OR_RETURN(Value * c, go(x, doc, depth + 1));
            v->items.push_back(c);
          }
          return v;
        default:
          return Status(Errc::kInvalidArgument, "unsupported JSON value in hyperparameters");
      }
    }
  };
  return Rec::go(j, doc, 0);
}

Result<nlohmann::ordered_json> value_to_json(const Value& v, const std::string& where) {
  struct Rec {
    static Result<nlohmann::ordered_json> go(const Value& v, const std::string& where,
                                             size_t depth) {
      auto refuse = [&](const std::string& what) {
        return Status(Errc::kUnsupported, "hyperparameter '" + where + "' holds " + what +
                                              ", which JSON cannot represent");
      };
      if (depth > kMaxJsonDepth) return refuse("values nested too deeply");
      switch (v.kind) {
        case Kind::kNone:
          return nlohmann::ordered_json(nullptr);
        case Kind::kBool:
          return nlohmann::ordered_json(v.b);
        case Kind::kInt:
          if (!v.big.empty()) {
            if (v.big.size() == 9 && v.big[8] == 0) {  // fits uint64
              uint64_t u = 0;
              for (int k = 0; k < 8; ++k)
                u |= static_cast<uint64_t>(static_cast<uint8_t>(v.big[k])) << (8 * k);
              return nlohmann::ordered_json(u);
            }
            return refuse("an integer beyond 64 bits (" + int_to_string(v) + ")");
          }
          return nlohmann::ordered_json(v.i);
        case Kind::kFloat:
          if (!std::isfinite(v.f)) return refuse("a non-finite float");
          return nlohmann::ordered_json(v.f);
        case Kind::kStr:
          return nlohmann::ordered_json(v.s);
        case Kind::kList:
        case Kind::kTuple: {
          auto a = nlohmann::ordered_json::array();
          for (size_t k = 0; k < v.items.size(); ++k) {
            CKPT_ASSIGN_OR_RETURN(auto x,
                                  go(*v.items[k], where + "." + std::to_string(k), depth + 1));
            a.push_back(std::move(x));
          }
          return a;
        }
        case Kind::kDict: {
          auto o = nlohmann::ordered_json::object();
          for (size_t k = 0; k + 1 < v.items.size(); k += 2) {
            if (v.items[k]->kind != Kind::kStr) return refuse("a dict with a non-string key");
            const std::string& key = v.items[k]->s;
            CKPT_ASSIGN_OR_RETURN(auto x, go(*v.items[k + 1], where + "." + key, depth + 1));
            o[key] = std::move(x);
          }
          return o;
        }
        case Kind::kTensor:
          return refuse("a tensor");
        case Kind::kBytes:
          return refuse("bytes");
        case Kind::kSet:
          return refuse("a set");
        default:
          return refuse("an object");
      }
    }
  };
  return Rec::go(v, where, 0);
}

nlohmann::json value_to_display_json(const Value& v, size_t depth) {
  if (depth > 50) return "...";
  switch (v.kind) {
    case Kind::kNone:
      return nullptr;
    case Kind::kBool:
      return v.b;
    case Kind::kInt:
      if (!v.big.empty()) return int_to_string(v);
      return v.i;
    case Kind::kFloat:
      if (!std::isfinite(v.f)) return std::isnan(v.f) ? "nan" : (v.f > 0 ? "inf" : "-inf");
      return v.f;
    case Kind::kStr:
      return v.s;
    case Kind::kBytes:
      return "<bytes of length " + std::to_string(v.s.size()) + ">";
    case Kind::kList:
    case Kind::kTuple:
    case Kind::kSet: {
      auto a = nlohmann::json::array();
      for (size_t k = 0; k < v.items.size() && k < 1000; ++k)
        a.push_back(value_to_display_json(*v.items[k], depth + 1));
      return a;
    }
    case Kind::kDict: {
      auto o = nlohmann::json::object();
      for (size_t k = 0; k + 1 < v.items.size() && k < 2000; k += 2) {
        o[key_repr(*v.items[k])] = value_to_display_json(*v.items[k + 1], depth + 1);
      }
      return o;
    }
    case Kind::kTensor: {
      std::string shape;
      for (size_t k = 0; k < v.tensor->shape.size(); ++k)
        shape += (k ? "," : "") + std::to_string(v.tensor->shape[k]);
      return "<tensor " + v.tensor->dtype + "[" + shape + "]>";
    }
    case Kind::kGlobal:
      return "<" + v.global_name() + ">";
    case Kind::kObject:
      return "<object " +
             (v.callee && v.callee->kind == Kind::kGlobal ? v.callee->global_name() : "?") + ">";
    case Kind::kStorage:
      return "<storage>";
  }
  return nullptr;
}

Status parse_hparam(const std::string& kv, nlohmann::ordered_json& into) {
  auto eq = kv.find('=');
  if (eq == std::string::npos || eq == 0) {
    return Status(Errc::kInvalidArgument, "--hparam expects KEY=VALUE, got '" + kv + "'");
  }
  std::string key = kv.substr(0, eq), text = kv.substr(eq + 1);
  auto parsed = nlohmann::ordered_json::parse(text, nullptr, /*allow_exceptions=*/false);
  into[key] = parsed.is_discarded() ? nlohmann::ordered_json(text) : parsed;
  return {};
}

Status encode_checkpoint(const EncodeRequest& req) {
  if (req.module.empty() && req.optimizer.empty() && req.hyperparameters.empty()) {
    return Status(
        Errc::kInvalidArgument,
        "a PyTorchCheckpoint needs at least one of --module, --optimizer, --hparam/--hparams");
  }
  if (!req.hyperparameters.is_object())
    return Status(Errc::kInvalidArgument, "hyperparameters must be a JSON object");
  for (const auto& [k, v] : req.hyperparameters.items()) {
    if (k == kModuleKey || k == kOptimizerKey) {
      return Status(Errc::kInvalidArgument,
                    "hyperparameter name '" + k + "' is reserved for the state dicts");
    }
  }
  Opened module, optimizer;
  std::vector<const TorchFile*> sources;
  if (!req.module.empty()) {
    CKPT_ASSIGN_OR_RETURN(module, open_torch(req.module, "module state_dict", req.storage));
    if (module.file->root().kind != Kind::kDict) {
      return Status(Errc::kInvalidArgument, req.module + " does not hold a state_dict (a dict)");
    }
    sources.push_back(module.file.get());
  }
  if (!req.optimizer.empty()) {
    CKPT_ASSIGN_OR_RETURN(optimizer,
                          open_torch(req.optimizer, "optimizer state_dict", req.storage));
    if (optimizer.file->root().kind != Kind::kDict) {
      return Status(Errc::kInvalidArgument,
                    req.optimizer + " does not hold an optimizer state_dict (a dict)");
    }
    sources.push_back(optimizer.file.get());
  }
  // flytekit's field order: module, hyperparameters, optimizer.
  Document doc;
  Value* root = doc.make(Kind::kDict);
  if (module.file) {
    root->items.push_back(doc.make_str(kModuleKey));
    root->items.push_back(module.file->doc().root);
  }
  for (const auto& [k, v] : req.hyperparameters.items()) {
    root->items.push_back(doc.make_str(k));
    CKPT_ASSIGN_OR_RETURN(Value * x, json_to_value(v, doc));
    root->items.push_back(x);
  }
  if (optimizer.file) {
    root->items.push_back(doc.make_str(kOptimizerKey));
    root->items.push_back(optimizer.file->doc().root);
  }
  WriteOptions wo;
  wo.archive_name = archive_name_for(req.output);
  return write_to_location(
      req.output, [&](ByteSink& sink) { return write_torch_file(*root, sources, sink, wo); },
      req.storage);
}

Result<DecodeResult> decode_checkpoint(const std::string& input, const std::string& dir, bool force,
                                       const StorageOptions& storage) {
  CKPT_ASSIGN_OR_RETURN(Opened in, open_torch(input, "checkpoint", storage));
  const Value& root = in.file->root();
  if (root.kind != Kind::kDict) {
    return Status(Errc::kInvalidArgument,
                  input + " is not a PyTorchCheckpoint: it does not hold a dict");
  }
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) {
    return Status(Errc::kInvalidArgument, "output directory '" + dir + "' does not exist");
  }
  DecodeResult out;
  out.hyperparameters = nlohmann::ordered_json::object();
  const Value* module = nullptr;
  const Value* optimizer = nullptr;
  for (size_t k = 0; k + 1 < root.items.size(); k += 2) {
    const Value& key = *root.items[k];
    if (key.kind != Kind::kStr) {
      return Status(Errc::kInvalidArgument, input + " is not a PyTorchCheckpoint: top-level key " +
                                                key_repr(key) + " is not a string");
    }
    if (key.s == kModuleKey) {
      module = root.items[k + 1];
    } else if (key.s == kOptimizerKey) {
      optimizer = root.items[k + 1];
    } else {
      CKPT_ASSIGN_OR_RETURN(out.hyperparameters[key.s], value_to_json(*root.items[k + 1], key.s));
    }
  }
  const fs::path d(dir);
  auto target = [&](const char* name) -> Result<std::string> {
    fs::path p = d / name;
    if (!force && fs::exists(p, ec)) {
      return Status(Errc::kFailedPrecondition,
                    "'" + p.string() + "' exists (use --force to overwrite)");
    }
    return p.string();
  };
  std::vector<const TorchFile*> sources{in.file.get()};
  if (module) {
    CKPT_ASSIGN_OR_RETURN(out.module_path, target("module_state_dict.pt"));
  }
  if (optimizer) {
    CKPT_ASSIGN_OR_RETURN(out.optimizer_path, target("optimizer_state_dict.pt"));
  }
  if (!out.hyperparameters.empty()) {
    CKPT_ASSIGN_OR_RETURN(out.hyperparameters_path, target("hyperparameters.json"));
  }
  if (module) {
    WriteOptions wo;
    wo.archive_name = "module_state_dict";
    CKPT_RETURN_IF_ERROR(write_to_location(
        out.module_path, [&](ByteSink& s) { return write_torch_file(*module, sources, s, wo); }));
  }
  if (optimizer) {
    WriteOptions wo;
    wo.archive_name = "optimizer_state_dict";
    CKPT_RETURN_IF_ERROR(write_to_location(out.optimizer_path, [&](ByteSink& s) {
      return write_torch_file(*optimizer, sources, s, wo);
    }));
  }
  if (!out.hyperparameters.empty()) {
    std::string text = out.hyperparameters.dump(2) + "\n";
    CKPT_RETURN_IF_ERROR(write_to_location(
        out.hyperparameters_path, [&](ByteSink& s) { return s.write(text.data(), text.size()); }));
  }
  return out;
}

nlohmann::ordered_json flyte_literal_type() {
  return {{"blob", {{"format", kBlobFormat}, {"dimensionality", "SINGLE"}}}};
}

nlohmann::ordered_json flyte_literal(const std::string& uri) {
  return {{"scalar",
           {{"blob",
             {{"metadata", {{"type", {{"format", kBlobFormat}, {"dimensionality", "SINGLE"}}}}},
              {"uri", uri}}}}}};
}

}  // namespace ckpt::torch
