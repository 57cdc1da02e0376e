"""The Django app: add ``"jshost.js_host"`` to ``INSTALLED_APPS`` and put
python-js-host's settings in ``JS_HOST = {...}``; they are applied when Django
starts (and the host attached then, with CONNECT_ONCE_CONFIGURED)."""

try:
    from django.apps import AppConfig
except ImportError:  # Django is optional
    AppConfig = None

__all__ = ["JsHostConfig"]

if AppConfig is not None:
    class JsHostConfig(AppConfig):
        """Reads ``settings.JS_HOST`` when Django is ready."""

        name = "jshost.js_host"
        label = "js_host"
        verbose_name = "jshost (python-js-host compatible)"

        def ready(self):
            from django.conf import settings as django_settings
            from .conf import settings
            settings.configure_from_django(django_settings)
else:
    JsHostConfig = None
