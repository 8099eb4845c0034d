"""What Web3MQ's JavaScript SDK signs on each of its calls: the default signed content.

Each signed call of the SDK (``@web3mq/client``, read from its 1.0.x source) signs
``userid + <some fields> + timestamp`` with its session or device key; which fields depends on
the call. ``SDK_SIGNED_CONTENTS`` lists them by method and path, and ``sdk_signed_content`` is
what ``SignedRequests`` uses where no ``Web3MQSettings.signed_content`` hook is given: a route in
the table gets its fields, any other ``userid + timestamp``. docs/web3mq.md prints the table.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from starlette.types import Scope

from .errors import SignedRequestRejected

#: (method, path from ``/api/`` on) -> the fields signed between ``userid`` and ``timestamp``.
SDK_SIGNED_CONTENTS: Mapping[tuple[str, str], tuple[str, ...]] = MappingProxyType(
    {
        # Served by WalletAuth itself (routes/web3mq_profile.py).
        ("GET", "/api/my_profile/"): (),  # user.getMyProfile
        ("POST", "/api/my_profile/"): (),  # user.updateMyProfile: nickname, avatar unsigned
        ("POST", "/api/get_user_binddids/"): (),  # user.getUserBindDids
        ("POST", "/api/user_binddid/"): ("did_type", "did_value"),  # user.userBindDid
        # Served by the application behind the middleware.
        ("GET", "/api/chats/"): (),  # channel.queryChannels
        ("POST", "/api/chats/"): ("topic", "topic_type"),  # channel.updateChannels
        ("POST", "/api/groups/"): ("groupid",),  # channel.createRoom (without NFT rules)
        ("GET", "/api/group_members/"): ("groupid",),  # channel.getGroupMemberList
        ("POST", "/api/group_invitation/"): ("groupid",),  # channel.inviteGroupMember
        ("POST", "/api/user_join_group/"): ("groupid",),  # channel.joinGroup
        ("GET", "/api/get_group_permissions/"): ("groupid",),  # channel.getGroupPermissions
        ("POST", "/api/groups/info/"): (),  # channel.queryGroups
        ("GET", "/api/messages/history/"): ("topic",),  # message.getMessageList
        ("POST", "/api/messages/status/"): ("status",),  # message.changeMessageStatus
        ("POST", "/api/get_new_messages/"): ("sync_timestamp",),  # channel.syncNewMessages
        ("GET", "/api/users/search/"): ("keyword",),  # user.searchUsers
        ("GET", "/api/get_user_permissions/"): (),  # user.getUserPermissions
        ("POST", "/api/get_target_user_permissions/"): ("target_userid",),
        ("POST", "/api/dapp/user_auth_info/"): ("dapp_id",),  # user.getMyAuthInfo
        ("GET", "/api/contacts/search/"): ("keyword",),  # contact.searchContact
        ("GET", "/api/user_follow_contacts/"): (),  # contact.getContactList
        ("GET", "/api/user_followers/"): (),  # contact.getFollowerList
        ("GET", "/api/user_following/"): (),  # contact.getFollowingList
        ("POST", "/api/contacts/add_friends/"): ("target_userid", "content"),  # sendFriend
        ("GET", "/api/contacts/add_friends/"): (),  # contact.getMyFriendRequestList
        ("GET", "/api/contacts/friend_requests/"): (),  # contact.getReceiveFriendRequestList
        ("POST", "/api/contacts/friend_requests/"): ("action", "target_userid"),
        ("POST", "/api/publish_notification_to_followers/"): ("title",),
        ("POST", "/api/notification/status/"): ("status",),  # notify.changeNotificationStatus
        ("GET", "/api/notification/history/"): ("topic", "notice_type"),  # queryNotifications
        ("GET", "/api/my_create_topic_list/"): (),  # topic.getMyCreateTopicList
        ("GET", "/api/my_subscribe_topic_list/"): (),  # topic.getMySubscribeTopicList
        ("POST", "/api/create_topic/"): (),  # topic.createTopic: topic_name unsigned
        ("POST", "/api/subscribe_topic/"): ("topicid",),  # topic.subscribeTopic
        ("POST", "/api/publish_topic_message/"): ("topicid",),  # title, content unsigned
        ("GET", "/api/my_create_dapps/"): (),  # dapp.getMyCreateDappList (creator_id)
    }
)


def api_path(scope: Scope) -> str:
    """The request path from its ``/api/`` segment on: a mount prefix does not matter."""
    path: str = scope.get("path", "")
    at = path.find("/api/")
    return path[at:] if at >= 0 else path


def _text(value: Any) -> str:
    # JavaScript's string concatenation of what the SDK sent: absent is "", a number its digits.
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    raise SignedRequestRejected()  # a list or object the SDK never concatenates as is


def signed_fields(scope: Scope) -> tuple[str, ...]:
    """The fields a request of this method and path signs between ``userid`` and ``timestamp``."""
    return SDK_SIGNED_CONTENTS.get((scope.get("method", "GET"), api_path(scope)), ())


def sdk_signed_content(scope: Scope, params: Mapping[str, Any]) -> str:
    """``userid + <the route's fields> + timestamp`` as the SDK signs it (see the table)."""
    userid = params.get("userid")
    if userid is None:
        userid = params.get("creator_id")
    fields = "".join(_text(params.get(name)) for name in signed_fields(scope))
    return f"{_text(userid)}{fields}{_text(params.get('timestamp'))}"


__all__ = ["SDK_SIGNED_CONTENTS", "api_path", "sdk_signed_content", "signed_fields"]
