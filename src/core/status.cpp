#include "ckpt/status.h"

#include <cerrno>
#include <cstring>

namespace ckpt {

std::string_view errc_name(Errc code) {
  switch (code) {
    case Errc::kOk: return "ok";
    case Errc::kInvalidArgument: return "invalid argument";
    case Errc::kNotConfigured: return "not configured";
    case Errc::kNoCheckpoint: return "no checkpoint";
    case Errc::kCorrupt: return "corrupt";
    case Errc::kNotFound: return "not found";
    case Errc::kIo: return "I/O error";
    case Errc::kNoSpace: return "no space";
    case Errc::kPermissionDenied: return "permission denied";
    case Errc::kUnsupported: return "unsupported";
    case Errc::kTimeout: return "timeout";
    case Errc::kUnavailable: return "unavailable";
    case Errc::kFailedPrecondition: return "failed precondition";
    case Errc::kInternal: return "internal error";
    case Errc::kPending: return "pending";
  }
  return "unknown";
}

Status Status::with_context(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

Status errno_status(int err, std::string_view what, std::string_view path) {
  Errc code = Errc::kIo;
  switch (err) {
    case ENOENT: code = Errc::kNotFound; break;
    case EACCES:
    case EPERM:
    case EROFS: code = Errc::kPermissionDenied; break;
    case ENOSPC:
    case EDQUOT: code = Errc::kNoSpace; break;
    default: break;
  }
  std::string msg(what);
  if (!path.empty()) {
    msg += " '";
    msg += path;
    msg += "'";
  }
  msg += ": ";
  msg += std::strerror(err);
  return Status(code, std::move(msg));
}

}  // namespace ckpt
