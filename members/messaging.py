"""The channels of campaign messages: WeChat template messages and SMS, behind one small interface.

A `Sender` is made once per batch of a campaign; it says where a member can be reached on its
channel (`address`) and sends the campaign's message there (`send`), returning the provider's
message id or raising `ApplicationError` (the vendors' `WeChatError`, `SmsError`, …).
"""

from typing import Protocol

from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from integrations.vendors.sms import sms_backend
from integrations.vendors.wechat import WeChatNotConfigured, official_account, template_id
from members.models import Campaign, Member
from o2o.errors import ApplicationError

WECHAT_TEMPLATE_PURPOSE = "campaign"


class Sender(Protocol):
    def address(self, member: Member) -> str: ...

    def send(self, member: Member) -> str: ...


def _sender_name(campaign: Campaign) -> str:
    return campaign.store.name if campaign.store_id else settings.O2O_CHAIN_NAME


class WeChatSender:
    """A template message to the member's openid: title → `first`, text → `keyword1`, sender → `keyword2`."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.account = official_account()
        self.template = campaign.wechat_template_id or template_id(WECHAT_TEMPLATE_PURPOSE)

    def address(self, member: Member) -> str:
        return member.openid or ""

    def send(self, member: Member) -> str:
        if self.account is None or not self.template:
            raise WeChatNotConfigured(_("WeChat campaign messages are not configured."))
        campaign = self.campaign
        with translation.override(settings.LANGUAGE_CODE):
            data = {
                "first": campaign.title or campaign.name,
                "keyword1": campaign.body,
                "keyword2": _sender_name(campaign),
                "remark": f"{timezone.localdate():%Y-%m-%d}",
            }
        return self.account.send_template_message(
            openid=member.openid, template_id=self.template, data=data, url=campaign.link
        )


class SmsSender:
    """The campaign's text to the member's mobile number, through the configured SMS backend."""

    def __init__(self, campaign: Campaign) -> None:
        self.campaign = campaign
        self.backend = sms_backend()

    def address(self, member: Member) -> str:
        return member.phone or ""

    def send(self, member: Member) -> str:
        return self.backend.send(phone=member.phone, text=self.campaign.body)


def sender_for(campaign: Campaign) -> Sender:
    """The sender of the campaign's channel."""
    if campaign.channel == Campaign.Channel.WECHAT:
        return WeChatSender(campaign)
    return SmsSender(campaign)


def check_channel_ready(channel: str) -> str:
    """Refuse a channel that cannot send now; returns the WeChat template id for a WeChat campaign.

    WeChat needs the official account and a campaign template; SMS always has a backend (the
    development one logs the messages).
    """
    if channel == Campaign.Channel.WECHAT:
        if official_account() is None:
            raise ApplicationError(
                _("WeChat is not configured in this deployment; send this campaign by SMS instead."),
                code="wechat_not_configured",
                details={"channel": [channel]},
            )
        template = template_id(WECHAT_TEMPLATE_PURPOSE)
        if not template:
            raise ApplicationError(
                _("No WeChat template is set for campaigns (WECHAT_TEMPLATE_CAMPAIGN)."),
                code="wechat_template_missing",
                details={"channel": [channel]},
            )
        return template
    if channel == Campaign.Channel.SMS:
        sms_backend()  # a wrong SMS_BACKEND fails here, before anything is queued
        return ""
    raise ApplicationError(_("Choose a channel."), code="invalid_channel", details={"channel": [channel]})
