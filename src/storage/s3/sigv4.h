// SigV4 signing done here rather than by curl, for the requests curl signs wrongly: before
// 8.10 curl orders the canonical headers by whole "name:value" lines, so a header whose name
// extends another's (x-amz-copy-source-range after x-amz-copy-source, '-' < ':') comes first
// and S3 rejects the signature. Pure, so it is unit-tested against AWS's examples.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "storage/s3/s3_util.h"

namespace ckpt::s3 {

std::string sha256_hex(std::string_view data);
// Raw 32-byte MAC.
std::string hmac_sha256(std::string_view key, std::string_view data);

// Whether curl's signer would misorder these "Name: value" header lines: one name is a proper
// prefix of another.
bool curl_sigv4_misorders(const std::vector<std::string>& header_lines);

struct SigV4Request {
  std::string method;
  // scheme://host[:port]/path?query as sent: the path percent-encoded once (S3 does not
  // encode twice) and the query in canonical form.
  std::string url;
  // "Name: value" lines to sign, x-amz-content-sha256 (and any session token) included.
  std::vector<std::string> headers;
  std::string payload_hash = "UNSIGNED-PAYLOAD";
  std::string region;
  std::string service = "s3";
  std::string amz_date;  // "20130524T000000Z", the time of signing
};

// The header lines to send besides req.headers: Host, x-amz-date and Authorization (a
// signature, never the secret).
std::vector<std::string> sigv4_sign(const SigV4Request& req, const Credentials& creds);

}  // namespace ckpt::s3
