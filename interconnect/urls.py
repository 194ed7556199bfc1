from django.urls import path

from .views import evcs

app_name = "interconnect"
urlpatterns = [path("<str:operation>", evcs, name="evcs")]
