#include "relay_links.h"

#include <iterator>
#include <utility>

namespace coffre::server::internal {

void LinkRegistry::DropExpiredLocked(std::uint64_t now_ms) {
  for (auto it = links_.begin(); it != links_.end();) {
    it = it->second.expires_ms <= now_ms ? links_.erase(it) : std::next(it);
  }
}

LinkRegistry::Link* LinkRegistry::FindLocked(std::string_view link_id, std::uint64_t now_ms) {
  auto it = links_.find(link_id);
  if (it == links_.end()) return nullptr;
  if (it->second.expires_ms <= now_ms) {
    links_.erase(it);
    return nullptr;
  }
  return &it->second;
}

LinkRegistry::Outcome LinkRegistry::Open(std::string_view link_id, const LinkOwner& owner,
                                         std::uint64_t now_ms, std::uint64_t* expires_ms) {
  std::lock_guard lock(mutex_);
  DropExpiredLocked(now_ms);
  if (Link* existing = FindLocked(link_id, now_ms); existing && existing->owner != owner) {
    return Outcome::kForbidden;
  }
  // One open link per user: a second `device link` cancels the first.
  for (auto it = links_.begin(); it != links_.end();) {
    it = it->second.owner.user_id == owner.user_id ? links_.erase(it) : std::next(it);
  }
  if (links_.size() >= max_links_) return Outcome::kFull;
  Link link;
  link.owner = owner;
  link.expires_ms = now_ms + lifetime_ms_;
  *expires_ms = link.expires_ms;
  links_.emplace(std::string(link_id), std::move(link));
  return Outcome::kOk;
}

LinkRegistry::Outcome LinkRegistry::Post(std::string_view link_id, wire::LinkSide side,
                                         std::string sealed,
                                         const std::optional<LinkOwner>& caller,
                                         std::uint64_t now_ms) {
  std::lock_guard lock(mutex_);
  Link* link = FindLocked(link_id, now_ms);
  if (link == nullptr) return Outcome::kNotFound;
  const bool is_owner = caller.has_value() && *caller == link->owner;
  std::string& slot = side == wire::LINK_SIDE_REQUEST ? link->request : link->reply;
  if (side == wire::LINK_SIDE_REPLY && !is_owner) return Outcome::kForbidden;
  if (!slot.empty()) return Outcome::kAlreadyPosted;
  slot = std::move(sealed);
  return Outcome::kOk;
}

LinkRegistry::Outcome LinkRegistry::Fetch(std::string_view link_id, wire::LinkSide side,
                                          const std::optional<LinkOwner>& caller,
                                          std::uint64_t now_ms, std::string* sealed,
                                          std::uint64_t* expires_ms) {
  std::lock_guard lock(mutex_);
  Link* link = FindLocked(link_id, now_ms);
  if (link == nullptr) return Outcome::kNotFound;
  const bool is_owner = caller.has_value() && *caller == link->owner;
  if (side == wire::LINK_SIDE_REQUEST && !is_owner) return Outcome::kForbidden;
  *sealed = side == wire::LINK_SIDE_REQUEST ? link->request : link->reply;
  *expires_ms = link->expires_ms;
  return Outcome::kOk;
}

std::size_t LinkRegistry::OpenLinks() {
  std::lock_guard lock(mutex_);
  return links_.size();
}

}  // namespace coffre::server::internal
