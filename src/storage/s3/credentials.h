// AWS credentials in the order the SDKs look for them, cached and refreshed before expiry.
#pragma once

#include <ctime>
#include <functional>
#include <mutex>
#include <optional>
#include <string>

#include "ckpt/status.h"
#include "storage/s3/http.h"
#include "storage/s3/s3_util.h"

namespace ckpt::s3 {

// Environment lookup, injectable so tests can run the chain without touching the process's.
using EnvFn = std::function<std::optional<std::string>(const std::string&)>;
EnvFn process_env();

// Region: explicit override, AWS_REGION, AWS_DEFAULT_REGION, the profile's region in the
// config file, else us-east-1.
std::string resolve_region(const EnvFn& env, const std::string& override_region);

// Runs the chain once: FLYTE_AWS_* keys; AWS_* keys; the shared credentials and config files
// (AWS_PROFILE); web identity (AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN through STS); the
// EC2 instance metadata service (IMDSv2). The first source that is configured decides: when
// it fails the error says so rather than silently using a later one.
Result<Credentials> resolve_credentials(const EnvFn& env, HttpClient& http,
                                        const std::string& region);

// Caches credentials; fetches again when they expire within `margin_s`. A failed refresh
// keeps the old ones while they are still valid.
class CredentialCache {
 public:
  using Fetch = std::function<Result<Credentials>()>;
  using Clock = std::function<std::time_t()>;
  CredentialCache(Fetch fetch, Clock now, long margin_s = 300)
      : fetch_(std::move(fetch)), now_(std::move(now)), margin_s_(margin_s) {}

  Result<Credentials> get();
  // The server rejected the cached ones as expired: fetch again on the next get().
  void invalidate();

 private:
  Fetch fetch_;
  Clock now_;
  long margin_s_;
  std::mutex mu_;
  std::optional<Credentials> cached_;
  bool stale_ = false;
};

}  // namespace ckpt::s3
