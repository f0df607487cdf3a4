#include <unistd.h>

#include "ckpt/io.h"
#include "cli/common.h"

namespace ckpt::cli {

void add_read_command(CLI::App& app, CliContext& ctx) {
  auto* cmd = app.add_subcommand(
      "read", "Write the single checkpoint file's bytes to stdout (or -o FILE), verified");
  static std::string out;
  cmd->add_option("-o,--output", out, "Write to FILE atomically instead of stdout");
  add_common_options(*cmd, ctx, false);
  cmd->callback([&ctx] {
    ctx.action = [&ctx] {
      Checkpointer cp(make_config(ctx));
      if (!out.empty() && out != "-") return finish(cp.read_to_file(out), ctx);
      FdSink sink(STDOUT_FILENO, "stdout");
      return finish(cp.read(sink), ctx);
    };
  });
}

}  // namespace ckpt::cli
