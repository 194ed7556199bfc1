"""WeChat (微信公众号): one client for template messages, OAuth login and the access
token they share; `integrations.wechat.fake` is a local server speaking the same wire."""

from integrations.wechat.client import (
    OAuthIdentity,
    WeChatClient,
    WeChatError,
    configured_client,
)

__all__ = ["OAuthIdentity", "WeChatClient", "WeChatError", "configured_client"]
