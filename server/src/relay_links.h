// Device-link rendezvous: the relay's side of `coffre device link` (docs/protocol.md
// "Device linking"). A link is a slot of two sealed messages, one per side, that lives
// kLinkLifetimeMs in memory only: a relay restart drops open links, and the user simply
// runs `coffre device link` again. The relay cannot read either message; the rules here
// only keep the slots bounded and each side written once, by the right party.
#ifndef COFFRE_SERVER_SRC_RELAY_LINKS_H_
#define COFFRE_SERVER_SRC_RELAY_LINKS_H_

#include <cstddef>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>

#include "coffre/wire/v1/wire.pb.h"

namespace coffre::server::internal {

namespace wire = coffre::wire::v1;

// The device a link belongs to: only it may read the request and write the reply.
struct LinkOwner {
  std::string user_id;
  std::uint32_t device_id = 0;
  bool operator==(const LinkOwner&) const = default;
};

class LinkRegistry {
 public:
  enum class Outcome {
    kOk,
    kNotFound,      // no such link, or it expired
    kForbidden,     // the side belongs to the link's owner and the caller is not it
    kAlreadyPosted, // that side was written already: each side is written once
    kFull,          // too many open links on this relay
  };

  explicit LinkRegistry(std::size_t max_links, std::uint64_t lifetime_ms)
      : max_links_(max_links), lifetime_ms_(lifetime_ms) {}

  // Opens `link_id` for `owner`, replacing the owner's previous link (one open link per
  // user at a time). Returns the expiry time, or kFull / kForbidden (the id is another
  // user's open link).
  Outcome Open(std::string_view link_id, const LinkOwner& owner, std::uint64_t now_ms,
               std::uint64_t* expires_ms);
  // REQUEST may come from anyone (`caller` empty: not authenticated); REPLY only from the
  // owner.
  Outcome Post(std::string_view link_id, wire::LinkSide side, std::string sealed,
               const std::optional<LinkOwner>& caller, std::uint64_t now_ms);
  // REQUEST only for the owner; REPLY for anyone. `sealed` is left empty while nothing was
  // posted on that side.
  Outcome Fetch(std::string_view link_id, wire::LinkSide side,
                const std::optional<LinkOwner>& caller, std::uint64_t now_ms,
                std::string* sealed, std::uint64_t* expires_ms);

  std::size_t OpenLinks();

 private:
  struct Link {
    LinkOwner owner;
    std::uint64_t expires_ms = 0;
    std::string request;
    std::string reply;
  };
  void DropExpiredLocked(std::uint64_t now_ms);
  Link* FindLocked(std::string_view link_id, std::uint64_t now_ms);

  const std::size_t max_links_;
  const std::uint64_t lifetime_ms_;
  std::mutex mutex_;
  std::map<std::string, Link, std::less<>> links_;
};

}  // namespace coffre::server::internal

#endif  // COFFRE_SERVER_SRC_RELAY_LINKS_H_
