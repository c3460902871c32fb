from django.urls import path

from reviews import views

app_name = "reviews"

urlpatterns = [
    path("", views.queue, name="queue"),
    path("next/", views.next_task, name="next"),
    path("mine/", views.my_cases, name="my_cases"),
    path("assignments/<int:pk>/", views.review, name="review"),
    path("assignments/<int:pk>/skip/", views.skip, name="skip"),
    path("reviews/<int:pk>/correct/", views.correct, name="correct"),
    path("adjudication/", views.adjudication_list, name="adjudication"),
    path("adjudication/<int:task_pk>/", views.adjudicate, name="adjudicate"),
    path("appeals/", views.appeals, name="appeals"),
    path("appeals/<int:decision_id>/", views.appeal, name="appeal"),
]
