// The on-storage layout of a checkpoint location, shared by the engine, `list` and `prune`:
//   <key>                                       flat checkpoint content (flytekit's layout)
//   .ckpt/manifests/<id>.json                   one per committed flat save
//   .ckpt/staging/<id>/<key>                    a flat save's copy of a key that already
//                                               existed, published to <key> after its commit
//   .ckpt/steps/<N>/...                         step N: a checkpoint laid out the same way
//   .ckpt/steps/<N>/.ckpt/deleted               step N is being deleted: readers skip it
// <id> is <20-digit ns time>-<host>-<pid>-<token>; names sort by time.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "ckpt/checkpoint.h"

namespace ckpt::layout {

bool is_bookkeeping(const std::string& key);
std::string step_prefix(uint64_t step);
// The step a key belongs to, with the key relative to the step in *rest.
std::optional<uint64_t> step_of(const std::string& key, std::string* rest = nullptr);
// A new save id (see above) for the current time.
std::string new_save_id();
// The time (ns since the epoch) in a manifest or staging id, 0 if it has none.
int64_t id_time(const std::string& id);
// Whether the save that chose `id` may still be running: its host is this one and the
// process is alive, or another host's and it began less than a day ago.
bool id_may_be_live(const std::string& id);

struct StepEntry {
  bool deleted = false;
  uint64_t bytes = 0;
};
// Every step present in a listing.
std::map<uint64_t, StepEntry> steps_in(const std::vector<ObjectInfo>& objects);

// The checkpoint under prefix ("" or a step prefix) from a listing of the whole location,
// reading its manifests. A step without a manifest is uncommitted.
Result<CheckpointView> build_view(Storage& storage, const std::vector<ObjectInfo>& objects,
                                  const std::string& prefix, std::optional<uint64_t> step);

// A manifest's records; one deleted since the listing (superseded) records nothing.
Result<std::map<std::string, ManifestEntry>> read_manifest(Storage& storage, const std::string& key);

// Deletes the manifests under prefix all of whose records newer manifests replace, so flat
// saves into one destination do not pile up manifests that every reader must fetch.
Status compact_manifests(Storage& storage, const std::string& prefix);

// The message for a view that is not complete.
Status incomplete_status(const CheckpointView& view);

}  // namespace ckpt::layout
