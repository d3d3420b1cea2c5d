"""django-oscar integration: add "django_tracify.contrib.oscar" after "django_tracify"."""
