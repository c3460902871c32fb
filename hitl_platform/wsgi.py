import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hitl_platform.settings.local")

application = get_wsgi_application()

# Django, scikit-learn and pandas leave some 200,000 long-lived objects, and a full collection walks them all
# (over 100 ms on a 2-core machine): a pause in the middle of some unlucky request. Frozen, they are skipped.
gc.freeze()
