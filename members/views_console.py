"""The clerk console's calls of the day: the store's opportunity-window follow-ups and their outcomes.

Scoped to the clerk's store: another store's call is a 404. The member's full number shows
here, since the call is their own store's.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils import timezone
from django.views.decorators.http import require_GET

from members import selectors, services
from members.models import FollowUp
from o2o.errors import ApplicationError
from o2o.money import format_yuan
from stores.selectors import staff_for_user


def _staff_or_403(request: HttpRequest):
    staff = staff_for_user(request.user)
    if staff is None:
        return None, render(request, "console/not_store_staff.html", status=403)
    return staff, None


@login_required
@require_GET
def calls(request: HttpRequest) -> HttpResponse:
    staff, refused = _staff_or_403(request)
    if refused:
        return refused
    today = timezone.localdate()
    context = {
        "staff": staff,
        "tab": "calls",
        "today": today,
        "calls": list(selectors.calls_of_the_day(staff.store, today)),
    }
    return render(request, "console/calls.html", context)


@login_required
def call(request: HttpRequest, follow_up_id: int) -> HttpResponse:
    staff, refused = _staff_or_403(request)
    if refused:
        return refused
    follow_up = selectors.store_follow_up(staff.store, follow_up_id)
    if follow_up is None:
        raise Http404
    if request.method == "POST":
        try:
            services.record_follow_up_outcome(
                staff=staff,
                follow_up_id=follow_up.pk,
                outcome=request.POST.get("outcome", ""),
                note=request.POST.get("note", ""),
            )
        except ApplicationError as error:
            messages.error(request, error.message)
            return redirect("console-calls:call", follow_up_id=follow_up.pk)
        messages.success(request, follow_up.member.nickname or follow_up.member.phone or "✓")
        return redirect("console-calls:list")
    history = selectors.member_history(follow_up.member)
    context = {
        "staff": staff,
        "tab": "calls",
        "call": follow_up,
        "history": history,
        "purchases": [(purchase, format_yuan(purchase.amount_fen)) for purchase in history["purchases"]],
        "outcomes": FollowUp.Outcome.choices,
    }
    return render(request, "console/call.html", context)
