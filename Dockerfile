# The Ferry control plane image (web, worker and beat run from it; see
# docker-compose.yml). Front-end assets come from npm at build time.

FROM node:20-slim AS assets
WORKDIR /src
COPY package.json package-lock.json ./
RUN npm ci --ignore-scripts --no-audit --no-fund
COPY scripts/collect_vendor.sh scripts/
RUN sh scripts/collect_vendor.sh

FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    DJANGO_SETTINGS_MODULE=controlplane.settings.production
# gettext: compilemessages below. git and openssh-client: the worker fetches
# project sources with git (ssh:// and git@host: URLs go through ssh).
RUN apt-get update \
    && apt-get install -y --no-install-recommends gettext git openssh-client \
    && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY requirements.txt constraints.txt ./
RUN pip install --no-cache-dir -r requirements.txt -c constraints.txt
COPY . .
COPY --from=assets /src/static/vendor/ static/vendor/
# Production settings refuse to load without a secret key and encryption
# keys; these exist only for these build steps and are not kept in the image
# (nothing is encrypted or signed while building).
RUN FERRY_SECRET_KEY=build-only-not-a-secret \
    FERRY_ENCRYPTION_KEYS=YnVpbGQtb25seS1rZXktbm90LWEtc2VjcmV0LTAwMDA= \
    sh -c 'python manage.py compilemessages -v 0 --ignore=node_modules \
           && python manage.py collectstatic --noinput -v 0'
RUN useradd --system --home /app ferry && mkdir -p var && chown ferry var
USER ferry
EXPOSE 8000
CMD ["gunicorn", "controlplane.wsgi", "--bind", "0.0.0.0:8000", "--workers", "3", \
     "--access-logfile", "-"]
