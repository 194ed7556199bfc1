"""A simulated OCPP 1.6 pile with the feature profiles (local list, reservation, smart
charging, firmware, diagnostics) for the ``test_ocpp16_*`` modules: it keeps what it was
given, and answers what the test tells it to (``answers[action] = status``, or
``"CALLERROR NotSupported"``: a pile without that feature profile), or drops its
connection when asked for ``drop_on`` (a pile going offline mid-command)."""

from __future__ import annotations

import asyncio

from ocpp.exceptions import NotSupportedError
from ocpp.routing import on
from ocpp.v16 import call_result
from ocpp.v16.enums import Action

from protocol.simulator import SimulatedPile


class FeaturePile(SimulatedPile):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.config |= {"AuthorizationCacheEnabled": "true", "LocalAuthListEnabled": "false"}
        self.answers: dict[str, str] = {}
        self.drop_on: str | None = None
        self.list_version = 0
        self.local_list: dict[str, dict] = {}
        self.reservations: dict[int, dict] = {}
        self.profiles: dict[int, dict] = {}
        self.requests: list[tuple[str, dict]] = []
        # A pile answering GetCompositeSchedule in amperes whatever it was asked: its periods.
        self.composite_amperes: list[dict] | None = None

    async def _asked(self, action: str, kwargs: dict) -> str:
        self.requests.append((action, kwargs))
        if self.drop_on == action:
            await self._connection.close()
            await asyncio.sleep(5)  # never answers
        answer = self.answers.get(action, "Accepted")
        if answer == "CALLERROR NotSupported":  # a pile without the feature profile
            raise NotSupportedError(description=f"{action} is not supported")
        return answer

    @on(Action.get_local_list_version)
    async def on_get_local_list_version(self, **kwargs):
        await self._asked("GetLocalListVersion", kwargs)
        return call_result.GetLocalListVersion(list_version=self.list_version)

    @on(Action.send_local_list)
    async def on_send_local_list(self, list_version, update_type, **kwargs):
        asked = {"list_version": list_version, "update_type": update_type, **kwargs}
        status = await self._asked("SendLocalList", asked)
        if status != "Accepted":
            return call_result.SendLocalList(status=status)
        if update_type == "Full":
            self.local_list = {}
        for item in kwargs.get("local_authorization_list") or []:
            if item.get("id_tag_info"):
                self.local_list[item["id_tag"]] = item["id_tag_info"]
            else:
                self.local_list.pop(item["id_tag"], None)
        self.list_version = list_version
        return call_result.SendLocalList(status="Accepted")

    @on(Action.reserve_now)
    async def on_reserve_now(self, **kwargs):
        status = await self._asked("ReserveNow", kwargs)
        if status == "Accepted":
            self.reservations[kwargs["reservation_id"]] = kwargs
        return call_result.ReserveNow(status=status)

    @on(Action.cancel_reservation)
    async def on_cancel_reservation(self, reservation_id, **kwargs):
        status = await self._asked("CancelReservation", {"reservation_id": reservation_id})
        if self.reservations.pop(reservation_id, None) is None:
            status = "Rejected"
        return call_result.CancelReservation(status=status)

    @on(Action.set_charging_profile)
    async def on_set_charging_profile(self, connector_id, cs_charging_profiles, **kwargs):
        status = await self._asked(
            "SetChargingProfile",
            {"connector_id": connector_id, "cs_charging_profiles": cs_charging_profiles},
        )
        if status == "Accepted":
            self.profiles[cs_charging_profiles["charging_profile_id"]] = {
                "connector_id": connector_id,
                **cs_charging_profiles,
            }
        return call_result.SetChargingProfile(status=status)

    @on(Action.clear_charging_profile)
    async def on_clear_charging_profile(self, **kwargs):
        await self._asked("ClearChargingProfile", kwargs)
        wanted = kwargs.get("id")
        gone = [pid for pid in self.profiles if wanted is None or pid == wanted]
        for pid in gone:
            del self.profiles[pid]
        return call_result.ClearChargingProfile(status="Accepted" if gone else "Unknown")

    @on(Action.get_composite_schedule)
    async def on_get_composite_schedule(self, connector_id, duration, **kwargs):
        status = await self._asked("GetCompositeSchedule", {"connector_id": connector_id})
        if status != "Accepted":
            return call_result.GetCompositeSchedule(status=status)
        if self.composite_amperes is not None:
            return call_result.GetCompositeSchedule(
                status="Accepted",
                connector_id=connector_id,
                schedule_start="2026-11-29T00:00:00Z",
                charging_schedule={
                    "duration": duration,
                    "charging_rate_unit": "A",
                    "charging_schedule_period": self.composite_amperes,
                },
            )
        limits = sorted(
            (p["charging_schedule"]["charging_schedule_period"][0]["limit"], pid)
            for pid, p in self.profiles.items()
            if p["connector_id"] in (0, connector_id)
        )
        periods = [{"start_period": 0, "limit": float(limits[0][0]) if limits else 7000.0}]
        return call_result.GetCompositeSchedule(
            status="Accepted",
            connector_id=connector_id,
            schedule_start="2026-11-29T00:00:00Z",
            charging_schedule={
                "duration": duration,
                "charging_rate_unit": "W",
                "charging_schedule_period": periods,
            },
        )

    @on(Action.update_firmware)
    async def on_update_firmware(self, **kwargs):
        await self._asked("UpdateFirmware", kwargs)
        return call_result.UpdateFirmware()

    @on(Action.get_diagnostics)
    async def on_get_diagnostics(self, **kwargs):
        await self._asked("GetDiagnostics", kwargs)
        return call_result.GetDiagnostics(file_name=f"diag-{self.id}.zip")
