// Unit tests of the S3 driver's pure parts: addressing, encoding, XML, INI, retry policy,
// error mapping and the credential cache.
#include <doctest/doctest.h>
#include <tinyxml2.h>

#include <cstdio>
#include <fstream>
#include <map>

#include "storage/s3/credentials.h"
#include "storage/s3/http.h"
#include "storage/s3/s3_util.h"
#include "storage/s3/sigv4.h"

using namespace ckpt;
using namespace ckpt::s3;

TEST_CASE("uri_encode keeps unreserved characters and encodes the rest as SigV4 wants") {
  CHECK(uri_encode("a-b_c.d~e09AZ", false) == "a-b_c.d~e09AZ");
  CHECK(uri_encode("dir/a b+c.bin", true) == "dir/a%20b%2Bc.bin");
  CHECK(uri_encode("dir/a b", false) == "dir%2Fa%20b");
  CHECK(uri_encode("caf\xC3\xA9", true) == "caf%C3%A9");
  CHECK(uri_encode("a=b&c?d#e%", true) == "a%3Db%26c%3Fd%23e%25");
  CHECK(uri_decode("a%20b%2Bc+d") == "a b+c d");
}

TEST_CASE("canonical_query sorts parameters and gives every one an '='") {
  CHECK(canonical_query({{"uploads", ""}}) == "uploads=");
  CHECK(canonical_query({{"uploadId", "x/y+z"}, {"partNumber", "3"}}) ==
        "partNumber=3&uploadId=x%2Fy%2Bz");
  CHECK(canonical_query({{"prefix", "a b/"}, {"list-type", "2"}, {"continuation-token", "t=="}}) ==
        "continuation-token=t%3D%3D&list-type=2&prefix=a%20b%2F");
}

TEST_CASE("endpoints: overrides, AWS regions and bad values") {
  auto ep = parse_endpoint("http://127.0.0.1:9000/");
  REQUIRE(ep.ok());
  CHECK(ep->scheme == "http");
  CHECK(ep->host == "127.0.0.1:9000");
  CHECK(ep->custom);
  auto bare = parse_endpoint("minio.local:9000");
  REQUIRE(bare.ok());
  CHECK(bare->scheme == "https");
  CHECK_FALSE(parse_endpoint("ftp://x").ok());
  CHECK_FALSE(parse_endpoint("http://host/some/path").ok());
  CHECK(aws_endpoint("eu-west-1").host == "s3.eu-west-1.amazonaws.com");
  CHECK(aws_endpoint("us-east-1").host == "s3.amazonaws.com");
  CHECK_FALSE(aws_endpoint("eu-west-1").custom);
}

TEST_CASE("addressing: path-style for custom endpoints, virtual-hosted on AWS when possible") {
  Endpoint custom = parse_endpoint("http://127.0.0.1:9000").value();
  Endpoint aws = aws_endpoint("eu-west-1");
  CHECK_FALSE(use_virtual_host(Addressing::kAuto, custom, "bucket"));
  CHECK(use_virtual_host(Addressing::kVirtual, custom, "bucket"));
  CHECK(use_virtual_host(Addressing::kAuto, aws, "my-bucket"));
  CHECK_FALSE(use_virtual_host(Addressing::kAuto, aws, "my.bucket"));  // TLS wildcard
  CHECK_FALSE(use_virtual_host(Addressing::kAuto, aws, "My_Bucket"));
  CHECK_FALSE(use_virtual_host(Addressing::kPath, aws, "my-bucket"));
  CHECK(parse_addressing("Virtual").value() == Addressing::kVirtual);
  CHECK(parse_addressing("").value() == Addressing::kAuto);
  CHECK_FALSE(parse_addressing("sideways").ok());

  CHECK(object_url(custom, false, "b", "ck/a b+c.pt", "") ==
        "http://127.0.0.1:9000/b/ck/a%20b%2Bc.pt");
  CHECK(object_url(custom, false, "b", "", "list-type=2&prefix=x%2F") ==
        "http://127.0.0.1:9000/b/?list-type=2&prefix=x%2F");
  CHECK(object_url(aws, true, "b", "k/\xE2\x82\xAC", "uploads=") ==
        "https://b.s3.eu-west-1.amazonaws.com/k/%E2%82%AC?uploads=");
}

TEST_CASE("ListObjectsV2 pages are parsed, entities decoded, paging token kept") {
  const char* xml = R"(<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Name>b</Name><Prefix>ck/</Prefix><KeyCount>2</KeyCount><MaxKeys>2</MaxKeys>
  <IsTruncated>true</IsTruncated>
  <Contents><Key>ck/a &amp; b.bin</Key><Size>12</Size><ETag>"x"</ETag></Contents>
  <Contents><Key>ck/big</Key><Size>5368709120</Size></Contents>
  <NextContinuationToken>1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=</NextContinuationToken>
</ListBucketResult>)";
  auto page = parse_list_objects_v2(xml);
  REQUIRE(page.ok());
  REQUIRE(page->entries.size() == 2);
  CHECK(page->entries[0].key == "ck/a & b.bin");
  CHECK(page->entries[0].size == 12);
  CHECK(page->entries[1].size == 5368709120ull);
  CHECK(page->truncated);
  CHECK(page->next_token == "1ueGcxLPRx1Tr/XYExHnhbYLgveDs2J/wm36Hy4vbOwM=");

  auto last = parse_list_objects_v2(
      "<ListBucketResult><IsTruncated>false</IsTruncated></ListBucketResult>");
  REQUIRE(last.ok());
  CHECK(last->entries.empty());
  CHECK_FALSE(last->truncated);
  CHECK_FALSE(parse_list_objects_v2("<html>proxy error</html>").ok());
  CHECK_FALSE(
      parse_list_objects_v2("<ListBucketResult><IsTruncated>true</IsTruncated></ListBucketResult>")
          .ok());
}

TEST_CASE("error documents, multipart answers and the completion body") {
  auto err = parse_error(
      "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code><Message>The specified key does not "
      "exist.</Message><Key>x</Key></Error>");
  REQUIRE(err);
  CHECK(err->code == "NoSuchKey");
  CHECK(err->message == "The specified key does not exist.");
  CHECK_FALSE(parse_error(""));
  CHECK_FALSE(parse_error("<ListBucketResult/>"));

  CHECK(parse_initiate_multipart("<InitiateMultipartUploadResult><Bucket>b</Bucket><Key>k</Key>"
                                 "<UploadId>2~abc</UploadId></InitiateMultipartUploadResult>")
            .value() == "2~abc");
  CHECK_FALSE(parse_initiate_multipart("<InitiateMultipartUploadResult/>").ok());

  auto uploads = parse_list_multipart_uploads(
      "<ListMultipartUploadsResult><Bucket>b</Bucket>"
      "<Upload><Key>p/big.bin</Key><UploadId>2~x</UploadId>"
      "<Initiated>2026-11-23T14:00:05.000Z</Initiated></Upload>"
      "<Upload><Key>p/big.bin2</Key><UploadId>2~y</UploadId><Initiated>bad</Initiated></Upload>"
      "</ListMultipartUploadsResult>");
  REQUIRE(uploads.ok());
  REQUIRE(uploads->size() == 2);
  CHECK((*uploads)[0].key == "p/big.bin");
  CHECK((*uploads)[0].upload_id == "2~x");
  CHECK((*uploads)[0].initiated == parse_iso8601("2026-11-23T14:00:05Z"));
  CHECK_FALSE((*uploads)[1].initiated);
  CHECK_FALSE(parse_list_multipart_uploads("<ListBucketResult/>").ok());

  std::string body = complete_multipart_body({"\"e1\"", "\"e2&\""});
  tinyxml2::XMLDocument doc;
  REQUIRE(doc.Parse(body.c_str()) == tinyxml2::XML_SUCCESS);
  const auto* root = doc.RootElement();
  CHECK(std::string(root->Name()) == "CompleteMultipartUpload");
  const auto* p1 = root->FirstChildElement("Part");
  REQUIRE(p1);
  CHECK(std::string(p1->FirstChildElement("PartNumber")->GetText()) == "1");
  CHECK(std::string(p1->FirstChildElement("ETag")->GetText()) == "\"e1\"");
  const auto* p2 = p1->NextSiblingElement("Part");
  REQUIRE(p2);
  CHECK(std::string(p2->FirstChildElement("PartNumber")->GetText()) == "2");
  CHECK(std::string(p2->FirstChildElement("ETag")->GetText()) == "\"e2&\"");
  CHECK_FALSE(p2->NextSiblingElement("Part"));
}

TEST_CASE("server-side copy: the copy source header and the copy answers") {
  CHECK(copy_source("b", "ck/a b+c.pt") == "/b/ck/a%20b%2Bc.pt");
  CHECK(copy_source("b", "k/\xE2\x82\xAC?x=1") == "/b/k/%E2%82%AC%3Fx%3D1");
  CHECK(copy_source("my.bucket", "dir/") == "/my.bucket/dir/");

  CHECK(parse_copy_result("<?xml version=\"1.0\"?><CopyObjectResult><LastModified>"
                          "2026-11-23T14:00:05.000Z</LastModified><ETag>&quot;e1&quot;</ETag>"
                          "</CopyObjectResult>")
            .value() == "\"e1\"");
  // Servers may send whitespace while a long copy runs, before the document.
  CHECK(parse_copy_result("\n \n<CopyPartResult><ETag>\"e2\"</ETag></CopyPartResult>").value() ==
        "\"e2\"");
  CHECK_FALSE(parse_copy_result("<CopyPartResult/>").ok());
  CHECK_FALSE(parse_copy_result("<Error><Code>InternalError</Code></Error>").ok());
  CHECK_FALSE(parse_copy_result("").ok());
  // CopyObject's failures midway come in a 200 answer, maybe after keep-alive whitespace.
  auto midway = parse_error("\n\n<Error><Code>SlowDown</Code><Message>m</Message></Error>");
  REQUIRE(midway);
  CHECK(midway->code == "SlowDown");
}

TEST_CASE("SigV4 signing: SHA-256, HMAC and AWS's GET Object example") {
  CHECK(sha256_hex("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  CHECK(sha256_hex("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq") ==
        "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  CHECK(sha256_hex(std::string(1000000, 'a')) ==
        "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  std::string mac = hmac_sha256("Jefe", "what do ya want for nothing?");  // RFC 4231 case 2
  std::string mac_hex;
  for (unsigned char c : mac) {
    mac_hex += "0123456789abcdef"[c >> 4];
    mac_hex += "0123456789abcdef"[c & 15];
  }
  CHECK(mac_hex == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843");

  Credentials creds;
  creds.access_key = "AKIAIOSFODNN7EXAMPLE";
  creds.secret_key = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
  SigV4Request req;
  req.method = "GET";
  req.url = "https://examplebucket.s3.amazonaws.com/test.txt";
  req.headers = {"Range:  bytes=0-9 ",
                 "x-amz-content-sha256: "
                 "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"};
  req.payload_hash = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
  req.region = "us-east-1";
  req.amz_date = "20130524T000000Z";
  auto lines = sigv4_sign(req, creds);
  REQUIRE(lines.size() == 3);
  CHECK(lines[0] == "Host: examplebucket.s3.amazonaws.com");
  CHECK(lines[1] == "x-amz-date: 20130524T000000Z");
  CHECK(lines[2] ==
        "Authorization: AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/"
        "aws4_request, SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41");
  CHECK(lines[2].find(creds.secret_key) == std::string::npos);

  // Names that extend others are sorted by name, which curl before 8.10 does not do.
  req.method = "PUT";
  req.url = "http://127.0.0.1:9000/b/k?uploadId=u&partNumber=2";
  req.headers = {"x-amz-copy-source-range: bytes=0-9", "x-amz-copy-source: /b/src",
                 "x-amz-content-sha256: UNSIGNED-PAYLOAD"};
  req.payload_hash = "UNSIGNED-PAYLOAD";
  auto copy = sigv4_sign(req, creds);
  CHECK(copy[0] == "Host: 127.0.0.1:9000");
  CHECK(copy[2].find("SignedHeaders=host;x-amz-content-sha256;x-amz-copy-source;"
                     "x-amz-copy-source-range;x-amz-date,") != std::string::npos);
  CHECK(curl_sigv4_misorders(req.headers));
  CHECK(curl_sigv4_misorders({"x-amz-copy-source: a", "X-Amz-Copy-Source-If-Match: \"e\""}));
  CHECK_FALSE(curl_sigv4_misorders(
      {"x-amz-copy-source: a", "x-amz-content-sha256: x", "Range: bytes=0-1", "If-Match: \"e\""}));
}

TEST_CASE("STS and IMDS credential documents") {
  auto sts = parse_assume_role_response(
      R"(<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Credentials>
      <AccessKeyId>ASIAEXAMPLE</AccessKeyId><SecretAccessKey>sec</SecretAccessKey>
      <SessionToken>tok</SessionToken><Expiration>2026-11-23T01:00:00Z</Expiration>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>)");
  REQUIRE(sts.ok());
  CHECK(sts->access_key == "ASIAEXAMPLE");
  CHECK(sts->secret_key == "sec");
  CHECK(sts->session_token == "tok");
  REQUIRE(sts->expiration);
  CHECK(*sts->expiration == 1795395600);
  CHECK_FALSE(parse_assume_role_response("<ErrorResponse><Error><Code>AccessDenied</Code>"
                                         "</Error></ErrorResponse>")
                  .ok());

  auto imds = parse_imds_credentials(
      R"({"Code":"Success","Type":"AWS-HMAC","AccessKeyId":"ASIA2","SecretAccessKey":"s2",
          "Token":"t2","Expiration":"2026-11-23T01:00:00Z"})");
  REQUIRE(imds.ok());
  CHECK(imds->access_key == "ASIA2");
  CHECK(imds->session_token == "t2");
  CHECK(*imds->expiration == 1795395600);
  CHECK_FALSE(parse_imds_credentials("not json").ok());
  CHECK_FALSE(parse_imds_credentials(R"({"Code":"Failure"})").ok());

  CHECK(parse_iso8601("2026-11-23T01:00:00.123Z").value() == 1795395600);
  CHECK(parse_iso8601("2026-11-23T02:00:00+01:00").value() == 1795395600);
  CHECK_FALSE(parse_iso8601("tomorrow"));
}

TEST_CASE("shared credentials and config files") {
  IniFile ini = parse_ini(R"(# comment
[default]
aws_access_key_id = AKDEFAULT
aws_secret_access_key=SKDEFAULT
; another comment
[profile dev]
region = eu-west-2
s3 =
    addressing_style = path
aws_access_key_id = AKDEV
[dev]
aws_access_key_id = AKDEVCRED
)");
  const auto* def = ini_profile(ini, "default", false);
  REQUIRE(def);
  CHECK(def->at("aws_access_key_id") == "AKDEFAULT");
  CHECK(def->at("aws_secret_access_key") == "SKDEFAULT");
  const auto* dev_cfg = ini_profile(ini, "dev", true);
  REQUIRE(dev_cfg);
  CHECK(dev_cfg->at("region") == "eu-west-2");
  CHECK(dev_cfg->at("aws_access_key_id") == "AKDEV");
  CHECK(dev_cfg->count("addressing_style") == 0);  // nested under "s3 ="
  CHECK(ini_profile(ini, "dev", false)->at("aws_access_key_id") == "AKDEVCRED");
  CHECK(ini_profile(ini, "default", true) == def);  // [default] has no "profile " prefix
  CHECK(ini_profile(ini, "missing", true) == nullptr);
}

TEST_CASE("retry policy: full jitter, exponential, capped") {
  RetryPolicy p{6, 0.1, 5.0};
  CHECK(p.delay_s(0, 0.999) < 0.1);
  CHECK(p.delay_s(3, 0.5) == doctest::Approx(0.4));
  CHECK(p.delay_s(20, 0.999) <= 5.0);
  CHECK(p.delay_s(20, 0.999) > 4.9);
  CHECK(p.delay_s(5, 0.0) == 0.0);

  CHECK(retryable_http(500, ""));
  CHECK(retryable_http(503, "SlowDown"));
  CHECK(retryable_http(429, ""));
  CHECK(retryable_http(400, "RequestTimeout"));
  CHECK(retryable_http(400, "ThrottlingException"));
  CHECK_FALSE(retryable_http(403, "AccessDenied"));
  CHECK_FALSE(retryable_http(404, "NoSuchKey"));
  CHECK_FALSE(retryable_http(400, "InvalidArgument"));
}

TEST_CASE("HTTP failures map to error codes with the object named and no XML") {
  auto denied = http_failure_status(403, S3Error{"SignatureDoesNotMatch", "sig"}, "s3://b/k");
  CHECK(denied.code() == Errc::kPermissionDenied);
  CHECK(denied.message().find("s3://b/k") != std::string::npos);
  CHECK(denied.message().find("secret") != std::string::npos);
  CHECK(denied.message().find('<') == std::string::npos);
  auto bucket = http_failure_status(
      404, S3Error{"NoSuchBucket", "The specified bucket does not exist"}, "s3://nob/k");
  CHECK(bucket.code() == Errc::kNotFound);
  CHECK(bucket.message().find("bucket does not exist") != std::string::npos);
  CHECK(http_failure_status(404, std::nullopt, "s3://b/k").code() == Errc::kNotFound);
  CHECK(http_failure_status(503, S3Error{"SlowDown", ""}, "s3://b/k").code() == Errc::kUnavailable);
  CHECK(http_failure_status(412, S3Error{"PreconditionFailed", ""}, "s3://b/k").code() ==
        Errc::kFailedPrecondition);
  auto region = http_failure_status(
      400, S3Error{"AuthorizationHeaderMalformed", "the region 'us-east-1' is wrong"}, "s3://b/k");
  CHECK(region.code() == Errc::kFailedPrecondition);
  CHECK(region.message().find("AWS_REGION") != std::string::npos);
}

TEST_CASE("credential cache refreshes before expiry and survives a failed refresh") {
  std::time_t now = 1000;
  int fetches = 0;
  bool fail = false;
  CredentialCache cache(
      [&]() -> Result<Credentials> {
        ++fetches;
        if (fail) return Status(Errc::kUnavailable, "sts down");
        Credentials c{"AK" + std::to_string(fetches), "SK", "T", now + 900, "test"};
        return c;
      },
      [&] { return now; }, 300);
  CHECK(cache.get().value().access_key == "AK1");
  now += 500;  // 400 s left: still fine
  CHECK(cache.get().value().access_key == "AK1");
  CHECK(fetches == 1);
  now += 200;  // 200 s left: inside the margin, fetch again
  CHECK(cache.get().value().access_key == "AK2");
  CHECK(fetches == 2);
  fail = true;
  now += 700;  // inside the margin, refresh fails, old ones still valid
  CHECK(cache.get().value().access_key == "AK2");
  now += 300;  // expired and refresh fails: error
  CHECK_FALSE(cache.get().ok());
  fail = false;
  CHECK(cache.get().value().access_key == "AK5");  // fetches 3 and 4 failed
  cache.invalidate();  // the server said the token expired: fetch again at once
  CHECK(cache.get().value().access_key == "AK6");
  CHECK(cache.get().value().access_key == "AK6");
}

namespace {
struct TempDir {
  std::string path;
  TempDir() {
    char tmpl[] = "/tmp/ckpt-s3-unit-XXXXXX";
    path = mkdtemp(tmpl);
  }
  ~TempDir() { std::system(("rm -rf '" + path + "'").c_str()); }
  void write(const std::string& name, const std::string& text) const {
    std::ofstream(path + "/" + name) << text;
  }
};

EnvFn fake_env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}
}  // namespace

TEST_CASE("credential chain order: FLYTE_AWS_*, AWS_*, then profiles") {
  TempDir dir;
  dir.write("credentials",
            "[default]\naws_access_key_id=AKFILE\naws_secret_access_key=SKFILE\n"
            "[other]\naws_access_key_id=AKOTHER\naws_secret_access_key=SKOTHER\n"
            "aws_session_token=TOKOTHER\n");
  dir.write("config",
            "[profile cfgonly]\naws_access_key_id=AKCFG\naws_secret_access_key=SKCFG\n"
            "region=ap-south-1\n");
  std::map<std::string, std::string> base = {
      {"HOME", dir.path},
      {"AWS_SHARED_CREDENTIALS_FILE", dir.path + "/credentials"},
      {"AWS_CONFIG_FILE", dir.path + "/config"},
      {"AWS_EC2_METADATA_DISABLED", "true"}};
  HttpClient http(RetryPolicy{1, 0.0, 0.0}, 2, 1);

  auto all = base;
  all["FLYTE_AWS_ACCESS_KEY_ID"] = "AKFLYTE";
  all["FLYTE_AWS_SECRET_ACCESS_KEY"] = "SKFLYTE";
  all["AWS_ACCESS_KEY_ID"] = "AKENV";
  all["AWS_SECRET_ACCESS_KEY"] = "SKENV";
  all["AWS_SESSION_TOKEN"] = "TOKENV";
  CHECK(resolve_credentials(fake_env(all), http, "us-east-1").value().access_key == "AKFLYTE");

  all.erase("FLYTE_AWS_ACCESS_KEY_ID");
  auto env_creds = resolve_credentials(fake_env(all), http, "us-east-1").value();
  CHECK(env_creds.access_key == "AKENV");
  CHECK(env_creds.session_token == "TOKENV");

  CHECK(resolve_credentials(fake_env(base), http, "us-east-1").value().access_key == "AKFILE");
  auto other = base;
  other["AWS_PROFILE"] = "other";
  auto oc = resolve_credentials(fake_env(other), http, "us-east-1").value();
  CHECK(oc.access_key == "AKOTHER");
  CHECK(oc.session_token == "TOKOTHER");
  other["AWS_PROFILE"] = "cfgonly";
  CHECK(resolve_credentials(fake_env(other), http, "us-east-1").value().access_key == "AKCFG");
  CHECK(resolve_region(fake_env(other), "") == "ap-south-1");
  CHECK(resolve_region(fake_env(other), "eu-north-1") == "eu-north-1");
  other["AWS_REGION"] = "ca-central-1";
  CHECK(resolve_region(fake_env(other), "") == "ca-central-1");

  other["AWS_PROFILE"] = "nope";
  auto missing = resolve_credentials(fake_env(other), http, "us-east-1");
  CHECK(missing.status().code() == Errc::kPermissionDenied);
  CHECK(missing.status().message().find("'nope'") != std::string::npos);

  auto none = fake_env({{"HOME", dir.path + "/nowhere"}, {"AWS_EC2_METADATA_DISABLED", "true"}});
  auto nothing = resolve_credentials(none, http, "us-east-1");
  CHECK(nothing.status().code() == Errc::kPermissionDenied);
  CHECK(nothing.status().message().find("no AWS credentials found") != std::string::npos);
}

TEST_CASE("secrets never appear in credential errors") {
  TempDir dir;
  dir.write("token", "SECRET-WEB-IDENTITY-TOKEN\n");
  // STS on a closed port: the error must name the role but not the token.
  auto env = fake_env({{"HOME", dir.path},
                       {"AWS_WEB_IDENTITY_TOKEN_FILE", dir.path + "/token"},
                       {"AWS_ROLE_ARN", "arn:aws:iam::1:role/r"},
                       {"AWS_ENDPOINT_URL_STS", "http://127.0.0.1:1"}});
  HttpClient http(RetryPolicy{1, 0.0, 0.0}, 2, 1);
  auto r = resolve_credentials(env, http, "us-east-1");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("arn:aws:iam::1:role/r") != std::string::npos);
  CHECK(r.status().message().find("SECRET-WEB-IDENTITY-TOKEN") == std::string::npos);
}
