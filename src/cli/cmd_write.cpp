#include <unistd.h>

#include "ckpt/io.h"
#include "cli/common.h"

namespace ckpt::cli {

int save_stream_and_report(ByteSource& src, const CliContext& ctx);

void add_write_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "write", "Replace the single-blob checkpoint <dest>/_dst_cp with bytes from FILE or stdin");
  static std::string file = "-";
  cmd->add_option("FILE", file, "Input file, or - for stdin (the default)");
  add_common_options(*cmd, ctx, true);
  add_write_options(*cmd, ctx);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      if (file == "-") {
        FdSource in(STDIN_FILENO, false, "stdin");
        return save_stream_and_report(in, ctx);
      }
      auto in = FdSource::open_file(file);
      if (!in.ok()) return finish(in.status(), ctx);
      return save_stream_and_report(**in, ctx);
    };
  });
}

}  // namespace ckpt::cli
