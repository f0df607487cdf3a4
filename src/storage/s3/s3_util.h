// Pure pieces of the S3 driver: encoding, request addressing, XML and INI parsing, retry
// policy and error mapping. No network here, so all of it is unit-tested directly.
#pragma once

#include <cstdint>
#include <ctime>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "ckpt/status.h"

namespace ckpt::s3 {

// RFC 3986 percent-encoding as SigV4 wants it: unreserved characters kept, every other byte
// as %XX (upper case). '/' is kept only when keep_slash (object keys in the path).
std::string uri_encode(std::string_view s, bool keep_slash);
std::string uri_decode(std::string_view s);
// application/x-www-form-urlencoded body (STS): same as uri_encode without keeping '/'.
std::string form_encode(const std::vector<std::pair<std::string, std::string>>& params);

// Query string in SigV4 canonical form: sorted by name then value, every pair "k=v" (also
// empty values, so curl signs exactly what S3 recomputes).
std::string canonical_query(std::vector<std::pair<std::string, std::string>> params);

enum class Addressing { kAuto, kPath, kVirtual };
Result<Addressing> parse_addressing(std::string_view value);

struct Endpoint {
  std::string scheme;   // "http" or "https"
  std::string host;     // host[:port]
  bool custom = false;  // an override (S3-compatible store) rather than AWS's own
};

// Parses "http://host:port", "https://host", or a bare "host:port" (https assumed).
Result<Endpoint> parse_endpoint(std::string_view url);
// AWS's endpoint for a region.
Endpoint aws_endpoint(std::string_view region);

// Buckets usable as a DNS label in a virtual-hosted URL (no dots over https, lower case).
bool dns_compatible_bucket(std::string_view bucket, bool https);

// Path-style for custom endpoints unless virtual is asked for (botocore's choice too);
// virtual-hosted on AWS when the bucket allows it.
bool use_virtual_host(Addressing style, const Endpoint& ep, std::string_view bucket);

// Full URL of an object (key empty: the bucket itself) with an optional canonical query.
std::string object_url(const Endpoint& ep, bool virtual_host, std::string_view bucket,
                       std::string_view key, std::string_view query);

// x-amz-copy-source of CopyObject / UploadPartCopy: "/bucket/key", the key percent-encoded
// with its '/' kept (S3 decodes it as it would an object's path).
std::string copy_source(std::string_view bucket, std::string_view key);

// ---- XML responses ----
struct ListPage {
  struct Entry {
    std::string key;
    uint64_t size = 0;
  };
  std::vector<Entry> entries;
  bool truncated = false;
  std::string next_token;
};
Result<ListPage> parse_list_objects_v2(std::string_view xml);

struct S3Error {
  std::string code;
  std::string message;
};
// The <Error> document of a failed request (nullopt when the body is not one).
std::optional<S3Error> parse_error(std::string_view xml);

Result<std::string> parse_initiate_multipart(std::string_view xml);          // the UploadId
std::string complete_multipart_body(const std::vector<std::string>& etags);  // part i+1

// The ETag of a CopyObjectResult or CopyPartResult (UploadPartCopy gives it only there).
Result<std::string> parse_copy_result(std::string_view xml);

struct OpenUpload {
  std::string key;
  std::string upload_id;
  std::optional<std::time_t> initiated;
};
// A ListMultipartUploads answer (one page is enough for the one key it is asked about).
Result<std::vector<OpenUpload>> parse_list_multipart_uploads(std::string_view xml);

struct Credentials {
  std::string access_key;
  std::string secret_key;
  std::string session_token;
  std::optional<std::time_t> expiration;  // temporary credentials only
  std::string source;                     // where they came from, for messages
};
// AssumeRoleWithWebIdentityResponse (STS).
Result<Credentials> parse_assume_role_response(std::string_view xml);
// IMDS security-credentials JSON document.
Result<Credentials> parse_imds_credentials(std::string_view json);

// ISO 8601 UTC time as STS and IMDS write it ("2026-11-22T23:59:59Z", fractions allowed).
std::optional<std::time_t> parse_iso8601(std::string_view s);

// ---- INI files (~/.aws/credentials, ~/.aws/config) ----
using IniFile = std::map<std::string, std::map<std::string, std::string>>;
IniFile parse_ini(std::string_view text);
// Section of a profile: "name" in the credentials file, "profile name" (or "default") in
// the config file.
const std::map<std::string, std::string>* ini_profile(const IniFile& ini, const std::string& name,
                                                      bool config_file);

// ---- retries and errors ----
struct RetryPolicy {
  unsigned max_attempts = 6;
  double base_delay_s = 0.1;
  double max_delay_s = 5.0;
  // Full jitter: uniform in [0, min(max, base * 2^attempt)); `unit` is a uniform [0, 1) draw.
  double delay_s(unsigned attempt, double unit) const;
};

// Whether an HTTP answer is worth retrying: 5xx, 429 and S3's throttling/timeouts that come
// as 400/403 codes.
bool retryable_http(long status, std::string_view error_code);

// Maps a final HTTP failure to a Status naming the object, never echoing the XML body.
Status http_failure_status(long status, const std::optional<S3Error>& err, std::string_view what);

}  // namespace ckpt::s3
