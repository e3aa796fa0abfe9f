"""The store manager's campaigns in the console: the store's campaigns with their progress, a new
segment and message for the store's own members, the count before sending, send and cancel.

Managers only (clerks and guides get a 403 page, like anyone who is not store staff); every
campaign and segment is read through the store-scoped selectors, so another store's is a 404.
"""

from collections.abc import Callable
from functools import wraps

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.db import transaction
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.translation import gettext as _
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from integrations.vendors.sms import sms_parts
from inventory.models import Product
from members import campaigns, selectors
from members.forms import StoreCampaignForm, add_service_errors
from members.messaging import check_channel_ready
from members.models import Campaign, Segment
from members.segments import describe_segment, segment_reach
from o2o.errors import ApplicationError
from stores.models import Staff
from stores.selectors import staff_for_user


def manager_required(view: Callable) -> Callable:
    """Signed in as the manager of an active store; passes `staff` to the view."""

    @login_required
    @wraps(view)
    def wrapper(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        staff = staff_for_user(request.user)
        if staff is None:
            return render(request, "console/not_store_staff.html", status=403)
        if staff.role != Staff.Role.MANAGER:
            return render(request, "console/managers_only.html", {"staff": staff, "tab": "campaigns"}, status=403)
        return view(request, staff, *args, **kwargs)

    return wrapper


def _ready_channels() -> list[str]:
    ready = []
    for channel in Campaign.Channel.values:
        try:
            check_channel_ready(channel)
        except ApplicationError:
            continue
        ready.append(channel)
    return ready


@manager_required
@require_GET
def campaign_list(request: HttpRequest, staff: Staff) -> HttpResponse:
    rows = [(campaign, selectors.campaign_progress(campaign)) for campaign in selectors.store_campaigns(staff.store)]
    return render(request, "console/campaigns.html", {"staff": staff, "tab": "campaigns", "rows": rows})


def _new_campaign(request: HttpRequest, staff: Staff, segment: Segment | None) -> HttpResponse:
    channels = _ready_channels()
    form = StoreCampaignForm(request.POST or None, staff=staff, segment=segment, channels=channels)
    if request.method == "POST" and form.is_valid():
        try:
            # The segment and its campaign are written together or not at all.
            with transaction.atomic():
                target = segment or campaigns.create_segment(staff=staff, user=request.user, **form.segment_fields())
                campaign = campaigns.create_campaign(
                    segment=target, staff=staff, user=request.user, **form.message_fields()
                )
        except ApplicationError as error:
            add_service_errors(form, error)
        else:
            messages.success(request, _("Draft saved. Check how many members it reaches, then send it."))
            return redirect("console-campaigns:detail", campaign_id=campaign.pk)
    context = {
        "staff": staff,
        "tab": "campaigns",
        "form": form,
        "segment": segment,
        "segment_words": describe_segment(segment) if segment else [],
        "products": Product.objects.filter(is_active=True).order_by("code").values_list("code", "name")
        if segment is None
        else [],
    }
    status = 400 if request.method == "POST" else 200
    return render(request, "console/campaign_new.html", context, status=status)


@manager_required
@require_http_methods(["GET", "POST"])
def campaign_new(request: HttpRequest, staff: Staff) -> HttpResponse:
    return _new_campaign(request, staff, None)


@manager_required
@require_http_methods(["GET", "POST"])
def campaign_new_for_segment(request: HttpRequest, staff: Staff, segment_id: int) -> HttpResponse:
    segment = selectors.store_segment(staff.store, segment_id)
    if segment is None:
        raise Http404
    return _new_campaign(request, staff, segment)


def _own_campaign(staff: Staff, campaign_id: int) -> Campaign:
    campaign = selectors.store_campaign(staff.store, campaign_id)
    if campaign is None:
        raise Http404
    return campaign


@manager_required
@require_GET
def campaign_detail(request: HttpRequest, staff: Staff, campaign_id: int) -> HttpResponse:
    """The campaign, its segment in words and, before sending, how many members it reaches now;
    while it sends, its progress refreshes itself (htmx)."""
    campaign = _own_campaign(staff, campaign_id)
    context = {
        "staff": staff,
        "tab": "campaigns",
        "campaign": campaign,
        "progress": selectors.campaign_progress(campaign),
    }
    if request.htmx:
        return render(request, "console/_campaign_progress.html", context)
    segment = campaign.segment
    context |= {
        "segment_words": describe_segment(segment),
        "reach": segment_reach(segment, channel=campaign.channel) if campaign.status == Campaign.Status.DRAFT else None,
        "sms_parts": sms_parts(campaign.body) if campaign.channel == Campaign.Channel.SMS else 0,
    }
    return render(request, "console/campaign.html", context)


@manager_required
@require_POST
def campaign_send(request: HttpRequest, staff: Staff, campaign_id: int) -> HttpResponse:
    campaign = _own_campaign(staff, campaign_id)
    try:
        campaigns.queue_campaign(campaign_id=campaign.pk, staff=staff, user=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("Sending has started."))
    return redirect("console-campaigns:detail", campaign_id=campaign.pk)


@manager_required
@require_POST
def campaign_cancel(request: HttpRequest, staff: Staff, campaign_id: int) -> HttpResponse:
    campaign = _own_campaign(staff, campaign_id)
    try:
        campaigns.cancel_campaign(campaign_id=campaign.pk, staff=staff, user=request.user)
    except ApplicationError as error:
        messages.error(request, error.message)
    else:
        messages.success(request, _("The campaign is cancelled; no more messages go out."))
    return redirect("console-campaigns:detail", campaign_id=campaign.pk)
