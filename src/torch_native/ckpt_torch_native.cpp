#include "ckpt_torch_native.h"

#include <c10/util/StringUtil.h>
#include <c10/util/string_utils.h>
#include <torch/nn/module.h>
#include <torch/optim/adam.h>
#include <torch/optim/adamw.h>
#include <torch/optim/sgd.h>

#include <algorithm>
#include <cstring>
#include <map>
#include <memory>
#include <set>

#include "ckpt/torch/pickle.h"
#include "ckpt/torch/pytorch_checkpoint.h"
#include "ckpt/torch/torch_file.h"
#include "ckpt/torch/zip.h"

namespace ckpt::torch_native {
namespace ct = ::ckpt::torch;  // the format layer (ckpt::torch shadows libtorch's ::torch here)
using ct::Kind;
using ct::Value;

namespace {

const std::pair<const char*, at::ScalarType> kDtypes[] = {
    {"float32", at::kFloat},         {"float64", at::kDouble},           {"float16", at::kHalf},
    {"bfloat16", at::kBFloat16},     {"complex32", at::kComplexHalf},    {"complex64", at::kComplexFloat},
    {"complex128", at::kComplexDouble}, {"uint8", at::kByte},            {"int8", at::kChar},
    {"int16", at::kShort},           {"int32", at::kInt},                {"int64", at::kLong},
    {"bool", at::kBool},
};

const char* dtype_name(at::ScalarType t) {
  for (const auto& [n, s] : kDtypes)
    if (s == t) return n;
  return nullptr;
}

bool scalar_type_of(const std::string& name, at::ScalarType* out) {
  for (const auto& [n, s] : kDtypes) {
    if (name == n) {
      *out = s;
      return true;
    }
  }
  return false;
}

template <class F>
Status guarded(const char* what, F&& f) {
  try {
    return f();
  } catch (const std::exception& e) {
    return Status(Errc::kInvalidArgument, std::string(what) + ": " + e.what());
  }
}

// ---- saving ----

// Builds the value tree; tensors' storages are remembered so that their bytes can be streamed
// straight from memory into the zip afterwards, and tensors sharing a storage share it in the
// file as torch.save does.
class Writer {
 public:
  ct::Document doc;

  Value* str(const std::string& s) { return doc.make_str(s); }
  Value* integer(int64_t i) { return doc.make_int(i); }
  Value* real(double f) {
    Value* v = doc.make(Kind::kFloat);
    v->f = f;
    return v;
  }
  Value* boolean(bool b) {
    Value* v = doc.make(Kind::kBool);
    v->b = b;
    return v;
  }
  Value* none() { return doc.make(Kind::kNone); }
  Value* dict(bool ordered = false) {
    Value* v = doc.make(Kind::kDict);
    v->ordered = ordered;
    return v;
  }
  static void put(Value* d, Value* k, Value* v) {
    d->items.push_back(k);
    d->items.push_back(v);
  }

  Result<Value*> tensor(const at::Tensor& in) {
    at::Tensor t = in.detach();
    if (!t.device().is_cpu()) t = t.cpu();
    if (t.is_sparse() || t.is_quantized() || t.is_mkldnn()) t = t.to_dense().contiguous();
    const char* dtype = dtype_name(t.scalar_type());
    if (!dtype) {
      return Status(Errc::kUnsupported,
                    std::string("tensors of dtype ") + c10::toString(t.scalar_type()) +
                        " cannot be saved");
    }
    const at::Storage& st = t.storage();
    const void* base = st.data();
    auto it = key_of_.find(base);
    std::string key;
    if (it == key_of_.end() || storages_[std::stoul(it->second)].nbytes() != st.nbytes()) {
      key = std::to_string(storages_.size());
      storages_.push_back(st);
      key_of_[base] = key;
    } else {
      key = it->second;
    }
    auto ref = std::make_shared<ct::TensorRef>();
    ref->dtype = dtype;
    ref->storage_class = std::string(ct::storage_class_of_dtype(dtype));
    ref->storage_key = key;
    ref->device = "cpu";
    ref->storage_numel = st.nbytes() / t.element_size();
    ref->offset = t.storage_offset();
    ref->shape.assign(t.sizes().begin(), t.sizes().end());
    ref->stride.assign(t.strides().begin(), t.strides().end());
    ref->owner = this;
    Value* v = doc.make(Kind::kTensor);
    v->tensor = std::move(ref);
    tensors_.push_back(t);  // keeps the storage alive until written
    return v;
  }

  Status write(const Value& root, ByteSink& sink, const std::string& archive) {
    ct::PickleWriteOptions po;
    po.storage_key = [](const ct::TensorRef& t) { return t.storage_key; };
    CKPT_ASSIGN_OR_RETURN(std::string pkl, ct::pickle(root, po));
    const std::string prefix = archive + "/";
    ct::ZipWriter zw(sink);
    CKPT_RETURN_IF_ERROR(zw.add(prefix + "data.pkl", pkl));
    std::vector<std::string> keys;
    for (size_t k = 0; k < storages_.size(); ++k) keys.push_back(std::to_string(k));
    std::sort(keys.begin(), keys.end());  // torch.save's record order
    for (const auto& k : keys) {
      const at::Storage& st = storages_[std::stoul(k)];
      CKPT_RETURN_IF_ERROR(zw.begin(prefix + "data/" + k, st.nbytes()));
      if (st.nbytes()) CKPT_RETURN_IF_ERROR(zw.write(st.data(), st.nbytes()));
      CKPT_RETURN_IF_ERROR(zw.end());
    }
    CKPT_RETURN_IF_ERROR(zw.add(prefix + "version", "3\n"));
    return zw.finish();
  }

 private:
  std::map<const void*, std::string> key_of_;
  std::vector<at::Storage> storages_;
  std::vector<at::Tensor> tensors_;
};

void collect(const ::torch::nn::Module& m, const std::string& prefix,
             std::vector<std::pair<std::string, at::Tensor>>& out) {
  for (const auto& p : m.named_parameters(/*recurse=*/false)) {
    if (p.value().defined()) out.emplace_back(prefix + p.key(), p.value());
  }
  for (const auto& b : m.named_buffers(/*recurse=*/false)) {
    if (b.value().defined()) out.emplace_back(prefix + b.key(), b.value());
  }
  for (const auto& c : m.named_children()) collect(*c.value(), prefix + c.key() + ".", out);
}

std::string param_id(const at::Tensor& p) { return c10::guts::to_string(p.unsafeGetTensorImpl()); }

Result<Value*> module_value(Writer& w, const ::torch::nn::Module& module) {
  Value* sd = w.dict(/*ordered=*/true);
  for (const auto& [name, t] : module_state_dict(module)) {
    CKPT_ASSIGN_OR_RETURN(Value * tv, w.tensor(t));
    Writer::put(sd, w.str(name), tv);
  }
  return sd;
}

Result<Value*> optimizer_value(Writer& w, const ::torch::optim::Optimizer& opt) {
  namespace optim = ::torch::optim;
  const bool sgd = dynamic_cast<const optim::SGD*>(&opt) != nullptr;
  const bool adam = dynamic_cast<const optim::Adam*>(&opt) != nullptr;
  const bool adamw = dynamic_cast<const optim::AdamW*>(&opt) != nullptr;
  if (!sgd && !adam && !adamw) {
    return Status(Errc::kUnsupported,
                  "only SGD, Adam and AdamW optimizers can be saved in Python's layout");
  }
  Value* state = w.dict();
  Value* groups = w.doc.make(Kind::kList);
  int64_t index = 0;
  for (const auto& g : opt.param_groups()) {
    Value* gd = w.dict();
    auto betas = [&](const std::tuple<double, double>& b) {
      Value* t = w.doc.make(Kind::kTuple);
      t->items = {w.real(std::get<0>(b)), w.real(std::get<1>(b))};
      return t;
    };
    // Keys and order as torch 1.13's Python optimizers write them.
    if (sgd) {
      const auto& o = static_cast<const optim::SGDOptions&>(g.options());
      Writer::put(gd, w.str("lr"), w.real(o.lr()));
      Writer::put(gd, w.str("momentum"), w.real(o.momentum()));
      Writer::put(gd, w.str("dampening"), w.real(o.dampening()));
      Writer::put(gd, w.str("weight_decay"), w.real(o.weight_decay()));
      Writer::put(gd, w.str("nesterov"), w.boolean(o.nesterov()));
      Writer::put(gd, w.str("maximize"), w.boolean(false));
      Writer::put(gd, w.str("foreach"), w.none());
      Writer::put(gd, w.str("differentiable"), w.boolean(false));
    } else {
      double lr, eps, wd;
      bool amsgrad;
      std::tuple<double, double> b;
      if (adam) {
        const auto& o = static_cast<const optim::AdamOptions&>(g.options());
        lr = o.lr(), b = o.betas(), eps = o.eps(), wd = o.weight_decay(), amsgrad = o.amsgrad();
      } else {
        const auto& o = static_cast<const optim::AdamWOptions&>(g.options());
        lr = o.lr(), b = o.betas(), eps = o.eps(), wd = o.weight_decay(), amsgrad = o.amsgrad();
      }
      Writer::put(gd, w.str("lr"), w.real(lr));
      Writer::put(gd, w.str("betas"), betas(b));
      Writer::put(gd, w.str("eps"), w.real(eps));
      Writer::put(gd, w.str("weight_decay"), w.real(wd));
      Writer::put(gd, w.str("amsgrad"), w.boolean(amsgrad));
      if (adam) {
        Writer::put(gd, w.str("maximize"), w.boolean(false));
        Writer::put(gd, w.str("foreach"), w.none());
        Writer::put(gd, w.str("capturable"), w.boolean(false));
        Writer::put(gd, w.str("differentiable"), w.boolean(false));
        Writer::put(gd, w.str("fused"), w.boolean(false));
      } else {  // torch 1.13's AdamW has fewer flags, in another order
        Writer::put(gd, w.str("foreach"), w.none());
        Writer::put(gd, w.str("maximize"), w.boolean(false));
        Writer::put(gd, w.str("capturable"), w.boolean(false));
      }
    }
    Value* params = w.doc.make(Kind::kList);
    for (const auto& p : g.params()) {
      params->items.push_back(w.integer(index));
      auto it = opt.state().find(param_id(p));
      if (it != opt.state().end()) {
        Value* ps = w.dict();
        if (sgd) {
          const auto& s = static_cast<const optim::SGDParamState&>(*it->second);
          Value* buf = w.none();
          if (s.momentum_buffer().defined()) {
            CKPT_ASSIGN_OR_RETURN(buf, w.tensor(s.momentum_buffer()));
          }
          Writer::put(ps, w.str("momentum_buffer"), buf);
        } else {
          int64_t step;
          at::Tensor m, v, vmax;
          if (adam) {
            const auto& s = static_cast<const optim::AdamParamState&>(*it->second);
            step = s.step(), m = s.exp_avg(), v = s.exp_avg_sq(), vmax = s.max_exp_avg_sq();
          } else {
            const auto& s = static_cast<const optim::AdamWParamState&>(*it->second);
            step = s.step(), m = s.exp_avg(), v = s.exp_avg_sq(), vmax = s.max_exp_avg_sq();
          }
          // torch 1.13 keeps the step count as a float32 0-d tensor.
          CKPT_ASSIGN_OR_RETURN(Value * sv,
                                w.tensor(at::scalar_tensor(static_cast<double>(step), at::kFloat)));
          Writer::put(ps, w.str("step"), sv);
          CKPT_ASSIGN_OR_RETURN(Value * mv, w.tensor(m));
          Writer::put(ps, w.str("exp_avg"), mv);
          CKPT_ASSIGN_OR_RETURN(Value * vv, w.tensor(v));
          Writer::put(ps, w.str("exp_avg_sq"), vv);
          if (vmax.defined()) {
            CKPT_ASSIGN_OR_RETURN(Value * xv, w.tensor(vmax));
            Writer::put(ps, w.str("max_exp_avg_sq"), xv);
          }
        }
        Writer::put(state, w.integer(index), ps);
      }
      ++index;
    }
    Writer::put(gd, w.str("params"), params);
    groups->items.push_back(gd);
  }
  Value* root = w.dict();
  Writer::put(root, w.str("state"), state);
  Writer::put(root, w.str("param_groups"), groups);
  return root;
}

// ---- loading ----

const Value* dict_get(const Value& d, const std::string& key) {
  if (d.kind != Kind::kDict) return nullptr;
  for (size_t k = 0; k + 1 < d.items.size(); k += 2) {
    if (d.items[k]->kind == Kind::kStr && d.items[k]->s == key) return d.items[k + 1];
  }
  return nullptr;
}

Result<double> number(const Value* v, const std::string& what) {
  if (v && v->kind == Kind::kFloat) return v->f;
  if (v && v->kind == Kind::kInt && v->big.empty()) return static_cast<double>(v->i);
  if (v && v->kind == Kind::kBool) return v->b ? 1.0 : 0.0;
  return Status(Errc::kInvalidArgument, "optimizer state: '" + what + "' is not a number");
}

Result<bool> flag(const Value* v, const std::string& what, bool dflt) {
  if (!v || v->kind == Kind::kNone) return dflt;
  if (v->kind == Kind::kBool) return v->b;
  return Status(Errc::kInvalidArgument, "optimizer state: '" + what + "' is not a bool");
}

// Materialises tensors of one open file. Storages of a memory-mapped file are wrapped without
// copying (after a CRC check); others are read once each.
class Reader {
 public:
  explicit Reader(const ct::TorchFile& tf) : tf_(tf) {}

  Result<at::Tensor> tensor(const Value* v, const std::string& name) {
    if (!v || v->kind != Kind::kTensor)
      return Status(Errc::kInvalidArgument, "'" + name + "' is not a tensor");
    const ct::TensorRef& t = *v->tensor;
    at::ScalarType st;
    if (!scalar_type_of(t.dtype, &st)) {
      return Status(Errc::kUnsupported, "'" + name + "' has dtype " + t.dtype + ", not supported");
    }
    auto it = bases_.find(t.storage_key);
    if (it == bases_.end()) {
      const ct::ZipEntry* rec = tf_.storage_entry(t.storage_key);
      if (!rec) return Status(Errc::kCorrupt, "storage of '" + name + "' is missing");
      const int64_t numel = static_cast<int64_t>(rec->size / c10::elementSize(st));
      at::Tensor base;
      if (const uint8_t* mapped = tf_.file().data()) {
        CKPT_RETURN_IF_ERROR(tf_.zip().verify(*rec));
        CKPT_ASSIGN_OR_RETURN(uint64_t off, tf_.zip().data_offset(*rec));
        base = at::from_blob(const_cast<uint8_t*>(mapped + off), {numel}, at::TensorOptions(st));
      } else {
        CKPT_ASSIGN_OR_RETURN(std::string bytes, tf_.zip().read(*rec, rec->size));
        base = at::empty({numel}, at::TensorOptions(st));
        std::memcpy(base.data_ptr(), bytes.data(), numel * c10::elementSize(st));
      }
      it = bases_.emplace(t.storage_key, base).first;
    }
    // TorchFile::open checked the extent against the storage; as_strided checks again.
    return it->second.as_strided(t.shape, t.stride, t.offset);
  }

 private:
  const ct::TorchFile& tf_;
  std::map<std::string, at::Tensor> bases_;
};

Status load_module(Reader& r, const Value& sd, ::torch::nn::Module& module, bool strict) {
  if (sd.kind != Kind::kDict) return Status(Errc::kInvalidArgument, "module_state_dict is not a dict");
  std::map<std::string, const Value*> saved;
  for (size_t k = 0; k + 1 < sd.items.size(); k += 2) {
    if (sd.items[k]->kind != Kind::kStr)
      return Status(Errc::kInvalidArgument, "module_state_dict has a key that is not a string");
    saved[sd.items[k]->s] = sd.items[k + 1];
  }
  std::vector<std::string> missing, unexpected;
  std::set<std::string> own;
  auto entries = module_state_dict(module);
  for (const auto& [name, dst] : entries) {
    own.insert(name);
    auto it = saved.find(name);
    if (it == saved.end()) {
      missing.push_back(name);
      continue;
    }
    CKPT_ASSIGN_OR_RETURN(at::Tensor src, r.tensor(it->second, name));
    if (src.sizes() != dst.sizes()) {
      return Status(Errc::kInvalidArgument, "size mismatch for '" + name + "': the file has " +
                                                c10::str(src.sizes()) + ", the module " +
                                                c10::str(dst.sizes()));
    }
  }
  for (const auto& [name, v] : saved) {
    if (!own.count(name)) unexpected.push_back(name);
  }
  if (strict && (!missing.empty() || !unexpected.empty())) {
    std::string msg = "module_state_dict does not match the module:";
    if (!missing.empty()) msg += " missing " + c10::Join(", ", missing) + ";";
    if (!unexpected.empty()) msg += " unexpected " + c10::Join(", ", unexpected) + ";";
    msg.pop_back();
    return Status(Errc::kInvalidArgument, msg);
  }
  // Everything checked: now copy (so a mismatch leaves the module untouched).
  ::torch::NoGradGuard no_grad;
  for (auto& [name, dst] : entries) {
    auto it = saved.find(name);
    if (it == saved.end()) continue;
    CKPT_ASSIGN_OR_RETURN(at::Tensor src, r.tensor(it->second, name));
    at::Tensor d = dst;
    d.copy_(src);
  }
  return {};
}

Status load_optimizer(Reader& r, const Value& sd, ::torch::optim::Optimizer& opt) {
  namespace optim = ::torch::optim;
  const bool sgd = dynamic_cast<optim::SGD*>(&opt) != nullptr;
  const bool adam = dynamic_cast<optim::Adam*>(&opt) != nullptr;
  const bool adamw = dynamic_cast<optim::AdamW*>(&opt) != nullptr;
  if (!sgd && !adam && !adamw) {
    return Status(Errc::kUnsupported, "only SGD, Adam and AdamW optimizers can be loaded");
  }
  const Value* groups = dict_get(sd, "param_groups");
  const Value* state = dict_get(sd, "state");
  if (!groups || groups->kind != Kind::kList || !state || state->kind != Kind::kDict) {
    return Status(Errc::kInvalidArgument,
                  "optimizer_state_dict has no 'state' dict and 'param_groups' list");
  }
  auto& own = opt.param_groups();
  if (groups->items.size() != own.size()) {
    return Status(Errc::kInvalidArgument, "the saved optimizer has " +
                                              std::to_string(groups->items.size()) +
                                              " parameter groups, this one " +
                                              std::to_string(own.size()));
  }
  // Saved index -> parameter, through each group's "params" list (as Python's load does).
  std::map<int64_t, at::Tensor> by_index;
  for (size_t g = 0; g < own.size(); ++g) {
    const Value& gv = *groups->items[g];
    const Value* params = dict_get(gv, "params");
    if (!params || params->kind != Kind::kList || params->items.size() != own[g].params().size()) {
      return Status(Errc::kInvalidArgument,
                    "parameter group " + std::to_string(g) +
                        " does not have as many parameters as the saved one");
    }
    for (size_t k = 0; k < params->items.size(); ++k) {
      const Value* iv = params->items[k];
      if (iv->kind != Kind::kInt) return Status(Errc::kInvalidArgument, "bad parameter index");
      by_index[iv->i] = own[g].params()[k];
    }
  }
  // Validate and convert everything before touching the optimizer.
  std::vector<std::unique_ptr<optim::OptimizerOptions>> options;
  for (size_t g = 0; g < own.size(); ++g) {
    const Value& gv = *groups->items[g];
    auto get = [&](const char* k) { return dict_get(gv, k); };
    CKPT_ASSIGN_OR_RETURN(bool maximize, flag(get("maximize"), "maximize", false));
    if (maximize) return Status(Errc::kUnsupported, "libtorch's optimizers cannot maximize");
    CKPT_ASSIGN_OR_RETURN(double lr, number(get("lr"), "lr"));
    CKPT_ASSIGN_OR_RETURN(double wd, number(get("weight_decay"), "weight_decay"));
    if (sgd) {
      auto o = std::make_unique<optim::SGDOptions>(lr);
      CKPT_ASSIGN_OR_RETURN(double momentum, number(get("momentum"), "momentum"));
      CKPT_ASSIGN_OR_RETURN(double dampening, number(get("dampening"), "dampening"));
      CKPT_ASSIGN_OR_RETURN(bool nesterov, flag(get("nesterov"), "nesterov", false));
      o->momentum(momentum).dampening(dampening).weight_decay(wd).nesterov(nesterov);
      options.push_back(std::move(o));
    } else {
      const Value* b = get("betas");
      if (!b || (b->kind != Kind::kTuple && b->kind != Kind::kList) || b->items.size() != 2)
        return Status(Errc::kInvalidArgument, "optimizer state: 'betas' is not a pair");
      CKPT_ASSIGN_OR_RETURN(double b1, number(b->items[0], "betas"));
      CKPT_ASSIGN_OR_RETURN(double b2, number(b->items[1], "betas"));
      CKPT_ASSIGN_OR_RETURN(double eps, number(get("eps"), "eps"));
      CKPT_ASSIGN_OR_RETURN(bool amsgrad, flag(get("amsgrad"), "amsgrad", false));
      if (adam) {
        auto o = std::make_unique<optim::AdamOptions>(lr);
        o->betas({b1, b2}).eps(eps).weight_decay(wd).amsgrad(amsgrad);
        options.push_back(std::move(o));
      } else {
        auto o = std::make_unique<optim::AdamWOptions>(lr);
        o->betas({b1, b2}).eps(eps).weight_decay(wd).amsgrad(amsgrad);
        options.push_back(std::move(o));
      }
    }
  }
  std::vector<std::pair<std::string, std::unique_ptr<optim::OptimizerParamState>>> states;
  for (size_t k = 0; k + 1 < state->items.size(); k += 2) {
    const Value* iv = state->items[k];
    const Value& ps = *state->items[k + 1];
    if (iv->kind != Kind::kInt || !by_index.count(iv->i)) {
      return Status(Errc::kInvalidArgument,
                    "optimizer state for parameter " + ct::key_repr(*iv) + ", which no group has");
    }
    const at::Tensor& p = by_index[iv->i];
    const std::string where = "state " + std::to_string(iv->i);
    // Python's load casts floating state to the parameter's dtype and device; so do we.
    auto like_param = [&](const char* key, bool required) -> Result<at::Tensor> {
      const Value* v = dict_get(ps, key);
      if (!v || v->kind == Kind::kNone) {
        if (required) return Status(Errc::kInvalidArgument, where + " has no '" + key + "'");
        return at::Tensor();
      }
      CKPT_ASSIGN_OR_RETURN(at::Tensor t, r.tensor(v, where + "." + key));
      if (t.sizes() != p.sizes())
        return Status(Errc::kInvalidArgument, where + "." + key + " does not match its parameter's shape");
      return t.to(p.options(), /*non_blocking=*/false, /*copy=*/true).contiguous();
    };
    if (sgd) {
      CKPT_ASSIGN_OR_RETURN(at::Tensor buf, like_param("momentum_buffer", false));
      if (!buf.defined()) continue;  // momentum 0: Python records None
      auto s = std::make_unique<optim::SGDParamState>();
      s->momentum_buffer(buf);
      states.emplace_back(param_id(p), std::move(s));
    } else {
      const Value* sv = dict_get(ps, "step");
      int64_t step = 0;
      if (sv && sv->kind == Kind::kTensor) {
        CKPT_ASSIGN_OR_RETURN(at::Tensor st, r.tensor(sv, where + ".step"));
        if (st.numel() != 1) return Status(Errc::kInvalidArgument, where + ".step is not a scalar");
        step = static_cast<int64_t>(st.to(at::kDouble).item<double>());
      } else {
        CKPT_ASSIGN_OR_RETURN(double d, number(sv, where + ".step"));
        step = static_cast<int64_t>(d);
      }
      CKPT_ASSIGN_OR_RETURN(at::Tensor m, like_param("exp_avg", true));
      CKPT_ASSIGN_OR_RETURN(at::Tensor v, like_param("exp_avg_sq", true));
      CKPT_ASSIGN_OR_RETURN(at::Tensor vmax, like_param("max_exp_avg_sq", false));
      if (adam) {
        auto s = std::make_unique<optim::AdamParamState>();
        s->step(step).exp_avg(m).exp_avg_sq(v);
        if (vmax.defined()) s->max_exp_avg_sq(vmax);
        states.emplace_back(param_id(p), std::move(s));
      } else {
        auto s = std::make_unique<optim::AdamWParamState>();
        s->step(step).exp_avg(m).exp_avg_sq(v);
        if (vmax.defined()) s->max_exp_avg_sq(vmax);
        states.emplace_back(param_id(p), std::move(s));
      }
    }
  }
  for (size_t g = 0; g < own.size(); ++g) own[g].set_options(std::move(options[g]));
  opt.state().clear();
  for (auto& [id, s] : states) opt.state()[id] = std::move(s);
  return {};
}

}  // namespace

std::vector<std::pair<std::string, at::Tensor>> module_state_dict(const ::torch::nn::Module& module) {
  std::vector<std::pair<std::string, at::Tensor>> out;
  collect(module, "", out);
  return out;
}

Status save_checkpoint(const std::string& uri, const ::torch::nn::Module* module,
                       const ::torch::optim::Optimizer* optimizer,
                       const nlohmann::ordered_json& hyperparameters, const SaveOptions& opts) {
  if (!hyperparameters.is_object()) {
    return Status(Errc::kInvalidArgument, "hyperparameters must be a JSON object");
  }
  if (!module && !optimizer && hyperparameters.empty()) {
    return Status(Errc::kInvalidArgument,
                  "a PyTorchCheckpoint needs a module, an optimizer or hyperparameters");
  }
  return guarded("cannot save checkpoint", [&]() -> Status {
    Writer w;
    Value* root = w.dict();
    if (module) {
      CKPT_ASSIGN_OR_RETURN(Value * mv, module_value(w, *module));
      Writer::put(root, w.str(ct::kModuleKey), mv);
    }
    if (optimizer) {
      CKPT_ASSIGN_OR_RETURN(Value * ov, optimizer_value(w, *optimizer));
      Writer::put(root, w.str(ct::kOptimizerKey), ov);
    }
    for (const auto& [k, v] : hyperparameters.items()) {
      if (k == ct::kModuleKey || k == ct::kOptimizerKey) {
        return Status(Errc::kInvalidArgument, "hyperparameter name '" + k + "' is reserved");
      }
      CKPT_ASSIGN_OR_RETURN(Value * hv, ct::json_to_value(v, w.doc));
      Writer::put(root, w.str(k), hv);
    }
    return ct::write_to_location(
        uri, [&](ByteSink& sink) { return w.write(*root, sink, opts.archive_name); },
        opts.storage);
  });
}

Result<LoadResult> load_checkpoint(const std::string& uri, ::torch::nn::Module* module,
                                   ::torch::optim::Optimizer* optimizer, const LoadOptions& opts) {
  CKPT_ASSIGN_OR_RETURN(ct::OpenedFile f, ct::open_location(uri, opts.storage));
  auto tf = ct::TorchFile::open(*f.file, /*strict=*/true);
  if (!tf.ok()) return tf.status().with_context(uri);
  const Value& root = (*tf)->root();
  if (root.kind != Kind::kDict) {
    return Status(Errc::kInvalidArgument, uri + " does not hold a dict (not a PyTorchCheckpoint)");
  }
  LoadResult out;
  Reader r(**tf);
  Status st = guarded("cannot load checkpoint", [&]() -> Status {
    if (module) {
      const Value* sd = dict_get(root, ct::kModuleKey);
      if (!sd) return Status(Errc::kNotFound, uri + " has no module_state_dict");
      CKPT_RETURN_IF_ERROR(load_module(r, *sd, *module, opts.strict));
      out.module_loaded = true;
    }
    if (optimizer) {
      const Value* sd = dict_get(root, ct::kOptimizerKey);
      if (!sd) return Status(Errc::kNotFound, uri + " has no optimizer_state_dict");
      CKPT_RETURN_IF_ERROR(load_optimizer(r, *sd, *optimizer));
      out.optimizer_loaded = true;
    }
    for (size_t k = 0; k + 1 < root.items.size(); k += 2) {
      const Value& key = *root.items[k];
      if (key.kind != Kind::kStr) continue;
      if (key.s == ct::kModuleKey || key.s == ct::kOptimizerKey) continue;
      CKPT_ASSIGN_OR_RETURN(auto j, ct::value_to_json(*root.items[k + 1], key.s));
      out.hyperparameters[key.s] = std::move(j);
    }
    return {};
  });
  if (!st.ok()) return st;
  return out;
}

}  // namespace ckpt::torch_native
