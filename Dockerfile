# One image for the three Lokaly processes; docker-compose.yml picks the command:
#   python manage_public.py serve      public API, HTTP + WebSockets (port 3000)
#   python manage_admin.py serve       admin API and the Django admin site (port 3001)
#   python manage_admin.py run_worker  the event worker
# The servers and the worker apply migrations on start (under a PostgreSQL advisory lock).
FROM python:3.11-slim

# HOST: the servers listen on every interface of the container, not only its loopback.
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    HOST=0.0.0.0

WORKDIR /app

# Dependencies first, so that a code change does not reinstall them.
COPY requirements/base.txt requirements/constraints.txt requirements/
RUN pip install -r requirements/base.txt

COPY . .

# The Django admin's static files, served by WhiteNoise from /app/staticfiles. Settings
# need these variables to load; nothing connects to the database or Redis here.
RUN DEBUG=1 \
    DATABASE_URL=postgresql://build@127.0.0.1:1/build \
    REDIS_URL=redis://127.0.0.1:1/0 \
    python manage_admin.py collectstatic --noinput

RUN useradd --system --uid 10001 --no-create-home lokaly
USER lokaly

EXPOSE 3000 3001
CMD ["python", "manage_public.py", "serve"]
