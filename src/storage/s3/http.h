// libcurl behind a small interface: a pool of reusable easy handles (keeping connections
// alive), SigV4 signing (by curl, or by sigv4.h where curl gets it wrong), low-speed timeouts,
// and retries with backoff and jitter.
#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "ckpt/status.h"
#include "storage/s3/s3_util.h"

namespace ckpt::s3 {

struct HttpRequest {
  std::string method = "GET";  // GET, HEAD, PUT, POST, DELETE
  std::string url;
  std::vector<std::string> headers;
  // Request body, replayable on retries: body_len bytes from memory, or from the file
  // body_fd at body_offset (read as curl sends, so no part buffer holds them).
  const char* body = nullptr;
  size_t body_len = 0;
  int body_fd = -1;
  uint64_t body_offset = 0;
  // SigV4 signing: region and a credential source asked again on every attempt (refreshes).
  std::string region;
  std::function<Result<Credentials>()> credentials;
  // Called when the server says the session token expired; the request is then retried once.
  std::function<void()> credentials_expired;
  // Extra headers computed per attempt (a Range that resumes after bytes already taken).
  std::function<std::vector<std::string>()> attempt_headers;
  // Receives a successful (2xx) response body as it arrives; a failed Status aborts the
  // transfer without retry. Without it the body is collected into HttpResponse::body.
  std::function<Status(const char*, size_t)> on_data;
  // Called once per attempt with the status and headers, before the first on_data call.
  std::function<void(long, const std::map<std::string, std::string>&)> on_headers;
  // Short connection timeout and few attempts (instance metadata: absent off EC2).
  bool quick = false;
  // What the request is about ("s3://bucket/key"), for errors and logs.
  std::string what;
};

struct HttpResponse {
  long status = 0;
  std::string body;                            // error bodies, or everything without on_data
  std::map<std::string, std::string> headers;  // names lower case
  unsigned attempts = 1;  // more than one: the server may have acted on an earlier try
  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class HttpClient {
 public:
  HttpClient(RetryPolicy policy, long stall_timeout_s, long connect_timeout_s);
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Performs the request, retrying transport failures and retryable answers. Returns the
  // final answer for any other HTTP status (the caller decides what it means), or a Status
  // when retries ran out (kUnavailable, kTimeout for stalls) or on_data failed.
  Result<HttpResponse> execute(const HttpRequest& req);

  const RetryPolicy& policy() const { return policy_; }

 private:
  void* acquire();
  void release(void* handle);

  RetryPolicy policy_;
  long stall_timeout_s_;
  long connect_timeout_s_;
  std::mutex mu_;
  std::vector<void*> idle_;
};

}  // namespace ckpt::s3
