# One image for every chargenet process (web, gateway, worker, beat); the command differs.
FROM python:3.11-slim
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
WORKDIR /app
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY . .
RUN DATABASE_URL=postgresql://build@localhost/build python manage.py collectstatic --no-input
EXPOSE 8000 9000
# Set after the build steps, which run without the production secrets.
ENV CHARGENET_ENV=production
CMD ["gunicorn", "chargenet.wsgi:application", "--bind", "0.0.0.0:8000", "--workers", "3"]
