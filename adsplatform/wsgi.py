import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "adsplatform.settings")

application = get_wsgi_application()

from adsplatform.secret_keys import require_secrets  # noqa: E402

# The WSGI entry point (manage.py runserver) refuses to run without its secrets too.
require_secrets()
